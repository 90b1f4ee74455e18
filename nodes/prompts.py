"""Prompts for the planner and the answer, and the example plans the planner is shown."""

PLANNER_SYSTEM = """You turn a question into a plan of tool calls, as JSON: {{"tasks": [...]}}.
Each task has: "id" (1, 2, 3, ...), "tool", "args", "deps" (ids of tasks whose results it needs).
Tasks with no deps run at the same time, so give independent lookups "deps": [].
An argument may contain "$N" to insert the result of task N (then N must be in deps).
Use only the tools listed. If the question needs no tool, reply {{"tasks": []}}.

Tools:
{tool_descriptions}"""

REPLAN_NOTE = """Your previous plan had problems:
{problems}
Results so far:
{results}
Reply with a new plan for what is still missing only, numbering its tasks from 1."""

ANSWER_SYSTEM = """You are a helpful, concise assistant. Answer the user's question in a few
sentences. When tool results are given, base the answer on them and quote their numbers exactly;
if a result is an error or is missing, say what could not be found."""

RESULTS_HEADER = "Tool results:"

# Example plans: the planner is shown the ones most similar to the question (dynamic few-shot),
# which small models follow far better than a static list.
PLAN_EXAMPLES: list[tuple[str, str]] = [
    (
        "What time is it in Tokyo and in Berlin?",
        '{"tasks": [{"id": 1, "tool": "current_time", "args": {"timezone": "Tokyo"}, "deps": []}, '
        '{"id": 2, "tool": "current_time", "args": {"timezone": "Berlin"}, "deps": []}]}',
    ),
    (
        "How many orders are pending, and what is the return policy?",
        '{"tasks": [{"id": 1, "tool": "sql_query", "args": {"query": "SELECT COUNT(*) FROM orders '
        'WHERE status = \'pending\'"}, "deps": []}, {"id": 2, "tool": "search_docs", '
        '"args": {"query": "return policy"}, "deps": []}]}',
    ),
    (
        "What does the most expensive product cost with 20% off?",
        '{"tasks": [{"id": 1, "tool": "sql_query", "args": {"query": "SELECT MAX(price_usd) FROM '
        'products"}, "deps": []}, {"id": 2, "tool": "calculator", "args": {"expression": '
        '"$1 * 0.8"}, "deps": [1]}]}',
    ),
    (
        "Which products are out of stock, and how long does shipping to Canada take?",
        '{"tasks": [{"id": 1, "tool": "sql_query", "args": {"query": "SELECT name FROM products '
        'WHERE stock = 0"}, "deps": []}, {"id": 2, "tool": "search_docs", "args": {"query": '
        '"shipping Canada"}, "deps": []}]}',
    ),
    (
        "What is the warranty on tents and when does support in Toronto open?",
        '{"tasks": [{"id": 1, "tool": "search_docs", "args": {"query": "warranty tents"}, '
        '"deps": []}, {"id": 2, "tool": "search_docs", "args": {"query": "support hours Toronto"}, '
        '"deps": []}]}',
    ),
    (
        "What is 15% of 2400 plus 380?",
        '{"tasks": [{"id": 1, "tool": "calculator", "args": {"expression": "2400 * 0.15 + 380"}, '
        '"deps": []}]}',
    ),
    (
        "If it is 09:00 in New York, what time is it in London, and what is the total stock of "
        "all products?",
        '{"tasks": [{"id": 1, "tool": "convert_time", "args": {"time": "09:00", "from_timezone": '
        '"America/New_York", "to_timezone": "Europe/London"}, "deps": []}, {"id": 2, "tool": '
        '"sql_query", "args": {"query": "SELECT SUM(stock) FROM products"}, "deps": []}]}',
    ),
    (
        "Who leads support, and what time is it in their office now?",
        '{"tasks": [{"id": 1, "tool": "sql_query", "args": {"query": "SELECT name, timezone FROM '
        'employees WHERE title = \'Support lead\'"}, "deps": []}, {"id": 2, "tool": '
        '"current_time", "args": {"timezone": "America/Toronto"}, "deps": []}]}',
    ),
    (
        "How much revenue did delivered orders make, and how much is that per order?",
        '{"tasks": [{"id": 1, "tool": "sql_query", "args": {"query": "SELECT SUM(o.quantity * '
        "p.price_usd) FROM orders o JOIN products p ON p.id = o.product_id WHERE o.status = "
        '\'delivered\'"}, "deps": []}, {"id": 2, "tool": "sql_query", "args": {"query": '
        '"SELECT COUNT(*) FROM orders WHERE status = \'delivered\'"}, "deps": []}, {"id": 3, '
        '"tool": "calculator", "args": {"expression": "$1 / $2"}, "deps": [1, 2]}]}',
    ),
    (
        "Which customers live in Sweden?",
        '{"tasks": [{"id": 1, "tool": "sql_query", "args": {"query": "SELECT name, city FROM '
        'customers WHERE country = \'Sweden\'"}, "deps": []}]}',
    ),
    (
        "What is the average price of camping gear, and how much is shipping to the United States?",
        '{"tasks": [{"id": 1, "tool": "sql_query", "args": {"query": "SELECT AVG(price_usd) FROM '
        'products WHERE category = \'camping\'"}, "deps": []}, {"id": 2, "tool": '
        '"search_docs", "args": {"query": "shipping cost United States"}, "deps": []}]}',
    ),
    (
        "When it is 18:30 in Madrid, what time is it in Lagos?",
        '{"tasks": [{"id": 1, "tool": "convert_time", "args": {"time": "18:30", "from_timezone": '
        '"Europe/Madrid", "to_timezone": "Africa/Lagos"}, "deps": []}]}',
    ),
    (
        "How do I wash the merino base layer, and how many are in stock?",
        '{"tasks": [{"id": 1, "tool": "search_docs", "args": {"query": "wash merino base layer"}, '
        '"deps": []}, {"id": 2, "tool": "sql_query", "args": {"query": "SELECT stock FROM products '
        'WHERE name LIKE \'%Merino%\'"}, "deps": []}]}',
    ),
    (
        "Hello! Who are you?",
        '{"tasks": []}',
    ),
]
