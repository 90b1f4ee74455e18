"""Prompts for the planner and the answer, and the example plans the planner is shown."""

PLANNER_SYSTEM = """You plan the tool calls that answer a question, as JSON: {{"plan": [...]}}.
Each step calls one tool from the list below: {{"<tool name>": {{<its arguments>}}}}.
Take argument values from the question. Steps run at the same time, so give each lookup its own
step. To use the result of an earlier step in an argument, write "$N" (N: that step's number,
counting from 1). If the question needs no tool, reply {{"plan": []}}.

Tools:
{tool_descriptions}"""

FITTING_TOOLS_NOTE = "(Tools that fit: {tools})"

REPLAN_NOTE = """Your previous plan had problems:
{problems}
Results so far:
{results}
Reply with a new plan for what is still missing only, numbering its steps from 1."""

# How every answer uses the tool results; ANSWER_SYSTEM's wording is the answer prompt's cached
# prefix, so it stays as it is.
_ANSWER_FROM_RESULTS = (
    "When tool results are given, base the answer on them and quote their numbers exactly;\n"
    "if a result is an error or is missing, say what could not be found."
)
ANSWER_SYSTEM = (
    "You are a helpful, concise assistant. Answer the user's question in a few\nsentences. "
    + _ANSWER_FROM_RESULTS
)
# For a task whose routing-table entry sets `answer_instructions` (e.g. writing: the whole text).
ANSWER_SYSTEM_WITH_INSTRUCTIONS = "You are a helpful assistant. {instructions} " + (
    _ANSWER_FROM_RESULTS
)

RESULTS_HEADER = "Tool results:"

# Answers the graph gives without a model when a lookup got no usable tool result (nodes/answer.py).
NO_PLAN_ANSWER = (
    "I could not look that up: no tool call could be planned for this question, so I have no "
    "result to answer from. Try rephrasing it, or check that a tool covers it."
)
FAILED_TOOLS_ANSWER = (
    "I could not look that up: every tool call failed, so I have no result to answer from."
)

# Example plans for the shipped tools, as (question, [(tool, args), ...]): the planner is shown the
# ones most similar to the question that use only the graph's tools (dynamic few-shot). Tools
# without examples get examples derived from their own schema (nodes/planner.py).
PLAN_EXAMPLES: list[tuple[str, list[tuple[str, dict[str, str]]]]] = [
    (
        "What time is it in Tokyo and in Berlin?",
        [
            ("current_time", {"timezone": "Tokyo"}),
            ("current_time", {"timezone": "Berlin"}),
        ],
    ),
    (
        "How many orders are pending, and what is the return policy?",
        [
            ("sql_query", {"query": "SELECT COUNT(*) FROM orders WHERE status = 'pending'"}),
            ("search_docs", {"query": "return policy"}),
        ],
    ),
    (
        "What does the most expensive product cost with 20% off?",
        [
            ("sql_query", {"query": "SELECT MAX(price_usd) FROM products"}),
            ("calculator", {"expression": "$1 * 0.8"}),
        ],
    ),
    (
        "Which customers joined in 2024, and what does membership include?",
        [
            ("sql_query", {"query": "SELECT name FROM customers WHERE joined_on LIKE '2024%'"}),
            ("search_docs", {"query": "membership benefits"}),
        ],
    ),
    (
        "What is the warranty on tents and when does support in Toronto open?",
        [
            ("search_docs", {"query": "warranty tents"}),
            ("search_docs", {"query": "support hours Toronto"}),
        ],
    ),
    (
        "What is 15% of 2400 plus 380?",
        [
            ("calculator", {"expression": "2400 * 0.15 + 380"}),
        ],
    ),
    (
        "If it is 09:00 in New York, what time is it in London, and what is the total stock of "
        "all products?",
        [
            (
                "convert_time",
                {
                    "time": "09:00",
                    "from_timezone": "America/New_York",
                    "to_timezone": "Europe/London",
                },
            ),
            ("sql_query", {"query": "SELECT SUM(stock) FROM products"}),
        ],
    ),
    (
        "Who leads support, and what time is it in their office now?",
        [
            (
                "sql_query",
                {"query": "SELECT name, timezone FROM employees WHERE title = 'Support lead'"},
            ),
            ("current_time", {"timezone": "America/Toronto"}),
        ],
    ),
    (
        "How much revenue did delivered orders make, and how much is that per order?",
        [
            (
                "sql_query",
                {
                    "query": "SELECT SUM(o.quantity * p.price_usd) FROM orders o JOIN products p "
                    "ON p.id = o.product_id WHERE o.status = 'delivered'"
                },
            ),
            ("sql_query", {"query": "SELECT COUNT(*) FROM orders WHERE status = 'delivered'"}),
            ("calculator", {"expression": "$1 / $2"}),
        ],
    ),
    (
        "Which customers live in Sweden?",
        [
            ("sql_query", {"query": "SELECT name, city FROM customers WHERE country = 'Sweden'"}),
        ],
    ),
    (
        "What is the average price of camping gear, and how much is shipping to the United States?",
        [
            (
                "sql_query",
                {"query": "SELECT AVG(price_usd) FROM products WHERE category = 'camping'"},
            ),
            ("search_docs", {"query": "shipping cost United States"}),
        ],
    ),
    (
        "When it is 18:30 in Madrid, what time is it in Lagos?",
        [
            (
                "convert_time",
                {"time": "18:30", "from_timezone": "Europe/Madrid", "to_timezone": "Africa/Lagos"},
            ),
        ],
    ),
    (
        "How do I wash the merino base layer, and how many are in stock?",
        [
            ("search_docs", {"query": "wash merino base layer"}),
            ("sql_query", {"query": "SELECT stock FROM products WHERE name LIKE '%Merino%'"}),
        ],
    ),
]
