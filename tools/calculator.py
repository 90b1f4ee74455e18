"""Safe arithmetic: parses an expression into a syntax tree and evaluates only numbers."""

import ast
import math
import operator
from collections.abc import Callable

from expressway.toolbox import read_only

_BINARY_OPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPS: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "log": math.log,
    "exp": math.exp,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
# Bounds keep a single expression from eating the CPU (e.g. 9**9**9).
_MAX_EXPRESSION_CHARS = 500
_MAX_EXPONENT = 1000


class CalculatorError(ValueError):
    """The expression is not plain arithmetic or cannot be evaluated."""


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise CalculatorError(f"exponent {right} is larger than {_MAX_EXPONENT}")
        return _BINARY_OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
        return _UNARY_OPS[type(node.op)](_evaluate(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(arg) for arg in node.args))
    raise CalculatorError(f"unsupported syntax: {ast.dump(node)[:80]}")


@read_only
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as "(129 * 3) - 12.5" or "sqrt(2) * 10".

    Supports + - * / // % **, parentheses, abs, round, min, max, sqrt, log, exp, pi and e.
    """
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression is longer than {_MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.replace("^", "**").strip(), mode="eval")
    except SyntaxError as error:
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from error
    try:
        value = _evaluate(tree)
    except (ZeroDivisionError, OverflowError, TypeError) as error:
        raise CalculatorError(f"cannot evaluate {expression!r}: {error}") from error
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)
