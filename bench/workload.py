"""The end-to-end workload: multi-tool questions over the project's real tools, in the style of
LLMCompiler's ParallelQA (compare two entities, multi-hop lookups, a calculation over lookups).

Each question carries the calls a correct agent makes (with "$N" references to earlier results)
and the answer text; the simulated backend scripts both agents from it, and the tools run for real
with an added, deterministic remote-like latency.
"""

import asyncio
import functools
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

from bench.simulator import ToolCallReply
from expressway.toolbox import read_only
from nodes.planner import encode_plan
from tools import DEFAULT_TOOLS

Call = tuple[str, dict[str, Any], list[int]]  # tool, args, deps


@dataclass(frozen=True)
class Question:
    text: str
    calls: list[Call]
    answer: str

    def plan_json(self) -> str:
        """The plan a competent planner writes (dependencies are the "$N" references)."""
        return encode_plan([(tool, args) for tool, args, _ in self.calls])

    def variant(self, *swaps: tuple[str, str]) -> "Question":
        """The same question about other things: each (old, new) swapped in the text, the calls'
        arguments and the answer, as a user asking the same kind of question would."""

        def swap(text: str) -> str:
            for old, new in swaps:
                text = text.replace(old, new)
            return text

        calls = [
            (tool, {k: swap(v) if isinstance(v, str) else v for k, v in args.items()}, deps)
            for tool, args, deps in self.calls
        ]
        return Question(swap(self.text), calls, swap(self.answer))


def _sql(query: str, deps: list[int] | None = None) -> Call:
    return ("sql_query", {"query": query}, deps or [])


def _docs(query: str) -> Call:
    return ("search_docs", {"query": query}, [])


def _time(zone: str) -> Call:
    return ("current_time", {"timezone": zone}, [])


def _calc(expression: str, deps: list[int]) -> Call:
    return ("calculator", {"expression": expression}, deps)


def _convert(at: str, source: str, target: str) -> Call:
    return ("convert_time", {"time": at, "from_timezone": source, "to_timezone": target}, [])


def _price(name: str) -> Call:
    return _sql(f"SELECT price_usd FROM products WHERE name LIKE '%{name}%'")


QUESTIONS: list[Question] = [
    Question(
        "How much more does the Basecamp tent cost than the Summit backpack?",
        [_price("Basecamp"), _price("Summit"), _calc("$1 - $2", [1, 2])],
        "The Basecamp 2-person tent costs 349 USD and the Summit 40L backpack 149.50 USD, so the "
        "tent costs 199.50 USD more.",
    ),
    Question(
        "What time is it in Tokyo and in Toronto right now?",
        [_time("Asia/Tokyo"), _time("America/Toronto")],
        "Right now it is the time shown above in Tokyo, and fourteen hours earlier in Toronto.",
    ),
    Question(
        "How many orders are pending and how many are shipped?",
        [
            _sql("SELECT COUNT(*) FROM orders WHERE status = 'pending'"),
            _sql("SELECT COUNT(*) FROM orders WHERE status = 'shipped'"),
        ],
        "There are 4 pending orders and 3 shipped orders in the shop's database.",
    ),
    Question(
        "What is the return window for unworn items and the warranty on backpacks?",
        [_docs("return unworn items days"), _docs("warranty backpacks")],
        "Unworn items can be returned within 30 days of delivery, and backpacks carry a lifetime "
        "warranty on seams and zips on top of the two-year standard warranty.",
    ),
    Question(
        "Which products are out of stock, and how long does standard shipping to Canada take?",
        [_sql("SELECT name FROM products WHERE stock = 0"), _docs("standard shipping Canada")],
        "The Approach shoes are out of stock, and standard shipping to Canada takes 5-8 business "
        "days.",
    ),
    Question(
        "What is the total value of pending orders, and what is it with a 10% member discount?",
        [
            _sql(
                "SELECT SUM(o.quantity * p.price_usd) FROM orders o JOIN products p "
                "ON p.id = o.product_id WHERE o.status = 'pending'"
            ),
            _calc("$1 * 0.9", [1]),
        ],
        "Pending orders are worth the total shown, and with the 10% member discount they come to "
        "the discounted figure computed from it.",
    ),
    Question(
        "Who is the support lead, and what time is it in Toronto?",
        [_sql("SELECT name FROM employees WHERE title = 'Support lead'"), _time("America/Toronto")],
        "Priya Raman leads support from Toronto, where the current local time is shown above.",
    ),
    Question(
        "How many headlamps and insulated bottles are in stock, and how many units in total?",
        [
            _sql("SELECT stock FROM products WHERE name LIKE 'Headlamp%'"),
            _sql("SELECT stock FROM products WHERE name LIKE 'Insulated bottle%'"),
            _calc("$1 + $2", [1, 2]),
        ],
        "There are 61 headlamps and 120 insulated bottles in stock, 181 units in total.",
    ),
    Question(
        "When it is 09:00 in Berlin, what time is it in Tokyo and in Los Angeles?",
        [
            _convert("09:00", "Europe/Berlin", "Asia/Tokyo"),
            _convert("09:00", "Europe/Berlin", "America/Los_Angeles"),
        ],
        "At 09:00 in Berlin it is 17:00 in Tokyo and midnight in Los Angeles.",
    ),
    Question(
        "How many customers do we have in Japan and in Canada?",
        [
            _sql("SELECT COUNT(*) FROM customers WHERE country = 'Japan'"),
            _sql("SELECT COUNT(*) FROM customers WHERE country = 'Canada'"),
        ],
        "We have one customer in Japan and one in Canada.",
    ),
    Question(
        "What does express shipping to Japan cost, and how should I store a down sleeping bag?",
        [_docs("express shipping Japan cost"), _docs("down sleeping bag store")],
        "Express shipping to Japan costs 45 USD and takes 4 business days; store the down bag "
        "uncompressed in its cotton sack.",
    ),
    Question(
        "What is the average price of camping products and of footwear?",
        [
            _sql("SELECT AVG(price_usd) FROM products WHERE category = 'camping'"),
            _sql("SELECT AVG(price_usd) FROM products WHERE category = 'footwear'"),
        ],
        "Camping products average 314 USD and footwear 144 USD.",
    ),
    Question(
        "How much do 3 pairs of trekking poles and 2 headlamps cost together?",
        [_price("Trekking poles"), _price("Headlamp"), _calc("3 * $1 + 2 * $2", [1, 2])],
        "Three pairs of trekking poles and two headlamps cost 387 USD together.",
    ),
    Question(
        "Which orders did Ana Souza place, and how fast are cancelled orders refunded?",
        [
            _sql(
                "SELECT o.id, o.status FROM orders o JOIN customers c ON c.id = o.customer_id "
                "WHERE c.name = 'Ana Souza'"
            ),
            _docs("cancelled orders refunded"),
        ],
        "Ana Souza placed orders 1001 (delivered) and 1009 (pending); cancelled orders are "
        "refunded immediately.",
    ),
    Question(
        "What time is it in Madrid, London and Lagos?",
        [_time("Europe/Madrid"), _time("Europe/London"), _time("Africa/Lagos")],
        "The current local times in Madrid, London and Lagos are listed above.",
    ),
    Question(
        "How many employees work in Support, and what are the Tokyo support hours?",
        [
            _sql("SELECT COUNT(*) FROM employees WHERE team = 'Support'"),
            _docs("Tokyo support hours"),
        ],
        "Two employees work in Support, and Tokyo support answers 09:00-18:00 local time on "
        "weekdays.",
    ),
    Question(
        "What revenue did delivered orders bring in, and what is 15% of it?",
        [
            _sql(
                "SELECT SUM(o.quantity * p.price_usd) FROM orders o JOIN products p "
                "ON p.id = o.product_id WHERE o.status = 'delivered'"
            ),
            _calc("$1 * 0.15", [1]),
        ],
        "Delivered orders brought in the revenue shown, and 15% of it is the figure computed.",
    ),
    Question(
        "What are the most and the least expensive products?",
        [
            _sql("SELECT name FROM products ORDER BY price_usd DESC LIMIT 1"),
            _sql("SELECT name FROM products ORDER BY price_usd ASC LIMIT 1"),
        ],
        "The Basecamp 2-person tent is the most expensive product and the insulated bottle the "
        "cheapest.",
    ),
    Question(
        "How many points does a member earn per dollar, and what is the tent's price in points?",
        [_docs("membership points per dollar"), _price("Basecamp"), _calc("$2 * 1", [2])],
        "Members earn one point per dollar, so the 349 USD tent earns 349 points.",
    ),
    Question(
        "What is the status of orders 1002 and 1007, and when were they placed?",
        [
            _sql("SELECT status, ordered_on FROM orders WHERE id = 1002"),
            _sql("SELECT status, ordered_on FROM orders WHERE id = 1007"),
        ],
        "Order 1002 shipped after being placed on 2026-11-14, and order 1007 shipped after being "
        "placed on 2026-11-18.",
    ),
    Question(
        "If it is 14:00 in Toronto, what time is it in Tokyo, and is Tokyo support open then?",
        [_convert("14:00", "America/Toronto", "Asia/Tokyo"), _docs("Tokyo support hours")],
        "14:00 in Toronto is 04:00 the next day in Tokyo, outside the 09:00-18:00 support hours.",
    ),
    Question(
        "What is the total stock across all products, and how many categories are there?",
        [
            _sql("SELECT SUM(stock) FROM products"),
            _sql("SELECT COUNT(DISTINCT category) FROM products"),
        ],
        "There are 423 units in stock across 5 product categories.",
    ),
    Question(
        "Compare the prices of the rain jacket, the base layer, the headlamp and the sleeping bag.",
        [_price("rain jacket"), _price("Merino"), _price("Headlamp"), _price("sleeping bag")],
        "The rain jacket costs 189.99 USD, the merino base layer 89 USD, the headlamp 45 USD and "
        "the down sleeping bag 279 USD.",
    ),
    Question(
        "What time is it now in Tokyo, Berlin, Toronto, San Francisco and London?",
        [
            _time("Asia/Tokyo"),
            _time("Europe/Berlin"),
            _time("America/Toronto"),
            _time("America/Los_Angeles"),
            _time("Europe/London"),
        ],
        "The current local times in the five support and engineering offices are listed above.",
    ),
    Question(
        "How many orders are pending, shipped, delivered and cancelled?",
        [
            _sql(f"SELECT COUNT(*) FROM orders WHERE status = '{status}'")
            for status in ("pending", "shipped", "delivered", "cancelled")
        ],
        "There are 4 pending, 3 shipped, 4 delivered and 1 cancelled order.",
    ),
    Question(
        "What are shipping times to the EU, the UK, the US and Japan, and what is the warranty?",
        [
            _docs("shipping European Union"),
            _docs("shipping United Kingdom"),
            _docs("shipping United States"),
            _docs("shipping Japan"),
            _docs("warranty"),
        ],
        "Standard shipping takes 2-4 business days to the EU, 3-5 to the UK, 5-8 to the US and "
        "7-12 to Japan; products carry a two-year warranty.",
    ),
    Question(
        "What is the combined stock of the tent, the sleeping bag and the backpack, and its value?",
        [
            _sql("SELECT stock FROM products WHERE name LIKE 'Basecamp%'"),
            _sql("SELECT stock FROM products WHERE name LIKE 'Down sleeping%'"),
            _sql("SELECT stock FROM products WHERE name LIKE 'Summit%'"),
            _calc("$1 + $2 + $3", [1, 2, 3]),
            _sql(
                "SELECT SUM(stock * price_usd) FROM products WHERE category IN ('camping', 'bags')"
            ),
        ],
        "There are 33 units of the three items in stock, worth the total value shown.",
    ),
]


# Later questions of the same shapes as earlier ones, about other entities: the order a real
# stream of requests has, where plan templates recur. They run after all of QUESTIONS, so the plan
# cache starts empty and each template is first learned from a question above.
VARIANTS: list[Question] = [
    QUESTIONS[1].variant(("Tokyo", "Seoul"), ("Toronto", "Chicago")),
    QUESTIONS[4].variant(("Canada", "Japan")),
    QUESTIONS[6].variant(("Toronto", "Denver")),
    QUESTIONS[8].variant(("09:00", "14:30"), ("Berlin", "Madrid"), ("Tokyo", "Seoul")),
    QUESTIONS[9].variant(("Japan", "Sweden"), ("Canada", "Mexico")),
    QUESTIONS[10].variant(("Japan", "Canada")),
    QUESTIONS[12].variant(
        ("3 pairs", "5 pairs"), ("3 *", "5 *"), ("2 headlamps", "4 headlamps"), ("2 *", "4 *")
    ),
    QUESTIONS[13].variant(("Ana Souza", "Kenji Watanabe")),
    QUESTIONS[14].variant(("Madrid", "Paris"), ("London", "Rome"), ("Lagos", "Nairobi")),
    QUESTIONS[15].variant(("Support", "Sales"), ("Tokyo", "Toronto")),
    QUESTIONS[16].variant(("15%", "20%"), ("0.15", "0.20")),
    QUESTIONS[19].variant(("1002", "1003"), ("1007", "1011")),
    QUESTIONS[20].variant(("14:00", "16:00"), ("Toronto", "Denver"), ("Tokyo", "Seoul")),
    QUESTIONS[23].variant(
        ("Tokyo", "Seoul"),
        ("Berlin", "Paris"),
        ("Toronto", "Chicago"),
        ("Europe/London", "Europe/Rome"),
        ("London", "Rome"),
    ),
    QUESTIONS[25].variant(("Japan", "Canada")),
]

# A small film catalogue for the movie workload (invented ratings; real titles, years, directors).
MOVIES: dict[str, tuple[int, str, str, int, float]] = {
    "Inception": (2010, "Christopher Nolan", "science fiction, heist", 148, 8.8),
    "Interstellar": (2014, "Christopher Nolan", "science fiction, drama", 169, 8.7),
    "Memento": (2000, "Christopher Nolan", "mystery, thriller", 113, 8.4),
    "Tenet": (2020, "Christopher Nolan", "science fiction, action", 150, 7.3),
    "The Matrix": (1999, "Lana and Lilly Wachowski", "science fiction, action", 136, 8.7),
    "Arrival": (2016, "Denis Villeneuve", "science fiction, drama", 116, 7.9),
    "Gravity": (2013, "Alfonso Cuaron", "science fiction, thriller", 91, 7.7),
    "Dunkirk": (2017, "Christopher Nolan", "war, drama", 106, 7.8),
    "Heat": (1995, "Michael Mann", "crime, thriller", 170, 8.3),
    "Collateral": (2004, "Michael Mann", "crime, thriller", 120, 7.5),
    "Drive": (2011, "Nicolas Winding Refn", "crime, drama", 100, 7.8),
    "Sicario": (2015, "Denis Villeneuve", "crime, thriller", 121, 7.6),
    "Zodiac": (2007, "David Fincher", "mystery, crime", 157, 7.7),
    "Prisoners": (2013, "Denis Villeneuve", "mystery, thriller", 153, 8.1),
    "Se7en": (1995, "David Fincher", "crime, mystery", 127, 8.6),
    "Fargo": (1996, "Joel Coen", "crime, comedy", 98, 8.1),
    "Alien": (1979, "Ridley Scott", "science fiction, horror", 117, 8.5),
    "Aliens": (1986, "James Cameron", "science fiction, action", 137, 8.4),
    "Predator": (1987, "John McTiernan", "science fiction, action", 107, 7.8),
    "The Thing": (1982, "John Carpenter", "science fiction, horror", 109, 8.2),
    "Sunshine": (2007, "Danny Boyle", "science fiction, thriller", 107, 7.2),
    "Moon": (2009, "Duncan Jones", "science fiction, drama", 97, 7.8),
    "Solaris": (1972, "Andrei Tarkovsky", "science fiction, drama", 167, 8.0),
    "Contact": (1997, "Robert Zemeckis", "science fiction, drama", 150, 7.5),
    "Amelie": (2001, "Jean-Pierre Jeunet", "romance, comedy", 122, 8.3),
    "Up": (2009, "Pete Docter", "animation, adventure", 96, 8.3),
    "Coco": (2017, "Lee Unkrich", "animation, fantasy", 105, 8.4),
    "Brave": (2012, "Mark Andrews", "animation, adventure", 93, 7.1),
    "Frozen": (2013, "Chris Buck", "animation, musical", 102, 7.4),
    "Shrek": (2001, "Andrew Adamson", "animation, comedy", 90, 7.9),
    "Cars": (2006, "John Lasseter", "animation, comedy", 117, 7.2),
    "Ratatouille": (2007, "Brad Bird", "animation, comedy", 111, 8.1),
}


@read_only
def movie_info(title: str) -> str:
    """Year, director, genres, runtime and rating of a film, by its title (e.g. Inception)."""
    key = next((name for name in MOVIES if name.lower() == title.strip().lower()), None)
    if key is None:
        raise ValueError(f"no film titled {title!r} in the catalogue")
    year, director, genres, minutes, rating = MOVIES[key]
    return f"{key} ({year}), directed by {director}; {genres}; {minutes} min; rated {rating}"


def _movie_question(references: list[str], options: list[str], best: str) -> Question:
    """LLMCompiler's Movie Recommendation shape: eight independent lookups, then a comparison."""

    def listed(titles: list[str]) -> str:
        return f"{', '.join(titles[:-1])} and {titles[-1]}"

    text = (
        f"I liked {listed(references)}. Look up those and {listed(options)} in the film "
        f"catalogue and recommend the one of {listed(options)} I would like most."
    )
    calls = [("movie_info", {"title": title}, []) for title in [*references, *options]]
    answer = f"{best} is the closest match: it shares their genres, era and pacing."
    return Question(text, calls, answer)


# One shape, six times: the first run learns the template, the next five can reuse it.
MOVIE_QUESTIONS: list[Question] = [
    _movie_question(
        ["Inception", "Interstellar", "Memento", "Tenet"],
        ["The Matrix", "Arrival", "Gravity", "Dunkirk"],
        "Arrival",
    ),
    _movie_question(
        ["Heat", "Collateral", "Drive", "Sicario"],
        ["Zodiac", "Prisoners", "Se7en", "Fargo"],
        "Prisoners",
    ),
    _movie_question(
        ["Alien", "Aliens", "Predator", "The Thing"],
        ["Sunshine", "Moon", "Solaris", "Contact"],
        "Sunshine",
    ),
    _movie_question(
        ["Amelie", "Up", "Coco", "Brave"], ["Frozen", "Shrek", "Cars", "Ratatouille"], "Ratatouille"
    ),
    _movie_question(
        ["Arrival", "Gravity", "Moon", "Contact"],
        ["Solaris", "Interstellar", "Alien", "Tenet"],
        "Interstellar",
    ),
    _movie_question(
        ["Zodiac", "Se7en", "Prisoners", "Memento"],
        ["Heat", "Fargo", "Drive", "Inception"],
        "Memento",
    ),
]
WORKLOADS: dict[str, list[Question]] = {
    "default": [*QUESTIONS, *VARIANTS],
    "movie": MOVIE_QUESTIONS,
}


def find_question(request: dict[str, Any]) -> Question:
    """The workload question a chat request is about (its user messages contain the text)."""
    user_text = " ".join(
        str(message.get("content", ""))
        for message in request.get("messages", [])
        if message.get("role") == "user"
    )
    for question in [*QUESTIONS, *VARIANTS, *MOVIE_QUESTIONS]:
        if question.text in user_text:
            return question
    raise LookupError(f"no workload question in request: {user_text[:120]!r}")


def scripted_reply(request: dict[str, Any]) -> "str | ToolCallReply | list[ToolCallReply]":
    """What a competent model answers: the plan (structured output), the next tool call (a tool
    calling request; one call per turn when `parallel_tool_calls` is false, else every call whose
    inputs are ready, in one turn; references filled from earlier tool results), or the final
    answer (a `final_answer` call when the request requires a tool call)."""
    question = find_question(request)
    if "response_format" in request:
        return question.plan_json()
    if "tools" in request:
        choice = request.get("tool_choice")
        named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        results = [m["content"] for m in request["messages"] if m.get("role") == "tool"]
        made = len(results)
        if made < len(question.calls) and named in (None, question.calls[made][0]):
            ready = question.calls[made : made + 1]
            if named is None and request.get("parallel_tool_calls") is not False:
                ready = list(
                    takewhile(lambda call: all(d <= made for d in call[2]), question.calls[made:])
                )
            replies = [
                ToolCallReply(
                    tool,
                    {k: _fill(v, results) if isinstance(v, str) else v for k, v in args.items()},
                )
                for tool, args, _ in ready
            ]
            return replies[0] if len(replies) == 1 else replies
        if choice not in (None, "auto", "none"):  # a tool call is required: answer through one
            return ToolCallReply("final_answer", {"answer": question.answer})
    return question.answer


def _fill(value: str, results: list[str]) -> str:
    for index in range(len(results), 0, -1):
        value = value.replace(f"${index}", results[index - 1])
    return value


def _latency(
    tool: Callable[..., Any], low_s: float, high_s: float, kwargs: dict[str, Any]
) -> float:
    key = f"{tool.__name__}:{json.dumps(kwargs, sort_keys=True)}"
    return low_s + (high_s - low_s) * (zlib.crc32(key.encode()) / 0xFFFFFFFF)


def with_latency(tool: Callable[..., Any], low_s: float, high_s: float) -> Callable[..., Any]:
    """The real tool, after a deterministic remote-like wait in [low_s, high_s] per distinct call
    (the same call waits the same time in every agent)."""

    @functools.wraps(tool)
    def remote(**kwargs: Any) -> Any:
        time.sleep(_latency(tool, low_s, high_s, kwargs))
        return tool(**kwargs)

    return remote


def with_async_latency(tool: Callable[..., Any], low_s: float, high_s: float) -> Callable[..., Any]:
    """The same wait, as an async tool: the prebuilt peer's ToolNode runs a turn's async calls all
    at once (its sync calls share a small thread pool), so it gets the kind that suits it."""

    @functools.wraps(tool)
    async def remote(**kwargs: Any) -> Any:
        await asyncio.sleep(_latency(tool, low_s, high_s, kwargs))
        return tool(**kwargs)

    return remote


def workload_tools(
    low_s: float, high_s: float, asynchronous: bool = False
) -> list[Callable[..., Any]]:
    """The shipped tools and the film catalogue, each with its remote-like latency."""
    wrap = with_async_latency if asynchronous else with_latency
    return [wrap(tool, low_s, high_s) for tool in [*DEFAULT_TOOLS, movie_info]]
