"""Whether an answer's facts come from its tool results: a mechanical check the fork check uses.

A *fact* is a number (`1,200`, `55.12`) or a capitalized word or code (`Denver`, `SKU-1005`;
`Osaka's` counts as `Osaka`), less a fixed list of common words (`The`, `Sorry`, ...) and the
plain first word of a sentence (`Try ...`; a code such as `SKU-1005` there still counts). A fact
of the answer is *backed* when it also occurs in the question or in an ok tool result: a number
when some number there, rounded to the answer's decimals, equals it (`55.1` is backed by
`55.12`); a word when it occurs there ignoring case. An answer is *grounded* when every one of its
facts is backed; so an answer with no ok tool result is grounded only when it states no fact that
is not in the question. A result is *used* when it backs a fact of the answer that the question
alone does not.

Limits: a name that opens a sentence (`Osaka has 12.`) is not seen as a fact; a fact written
differently (`twelve`, `1.2k`, `Deutschland`) counts as unbacked, and an invented fact in lower
case (`the tent is green`) is not seen; a number a tool did not return but that follows from one
(a sum the answer computed) counts as unbacked.
"""

import re
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?")
_WORD = re.compile(r"\b[A-Z][\w'’-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:\n]|^\s*[-*])\s*$")
_CONTRACTION = re.compile(r"['’](s|m|re|ll|ve|d|t)$")  # Osaka's, I'm, We're
COMMON_WORDS = frozenset(
    """a about according after all also an and answer any are as at based be because before
    best but by can certainly could currently dear do does dr for from great had has have he
    hello here hi how however i if in is it its let me mr mrs ms my no not note of ok okay on
    or our please regards she so sorry sure thank thanks that the their there these they this
    those to today total unfortunately us was we were what when where which who why will with
    would yes you your""".split()  # noqa: SIM905 (a list literal would take 100 lines)
)


def numbers(text: str) -> list[Decimal]:
    found = []
    for match in _NUMBER.findall(text):
        try:
            found.append(Decimal(match.replace(",", "")))
        except InvalidOperation:
            continue
    return found


def words(text: str) -> set[str]:
    """Capitalized words and codes, less common words and a sentence's plain first word (a
    capital there says nothing; a code such as SKU-1005 there still counts)."""
    found = set()
    for match in _WORD.finditer(text):
        word = _CONTRACTION.sub("", match.group()).strip("'’-")
        opens_sentence = _SENTENCE_START.search(text[: match.start()]) is not None
        plain = not any(char.isdigit() or char.isupper() for char in word[1:])
        if word and word.lower() not in COMMON_WORDS and not (opens_sentence and plain):
            found.add(word)
    return found


def _number_backed(value: Decimal, sources: Iterable[Decimal]) -> bool:
    step = Decimal(1).scaleb(min(0, int(value.as_tuple().exponent)))  # the answer's last digit
    try:
        return any(source.quantize(step, ROUND_HALF_UP) == value for source in sources)
    except InvalidOperation:  # more digits than Decimal's precision: compare as written
        return value in sources


def unbacked_facts(answer: str, sources: Iterable[str]) -> list[str]:
    """The facts of `answer` found in none of `sources` (the question and the ok results)."""
    texts = list(sources)
    source_numbers = [number for text in texts for number in numbers(text)]
    lowered = " ".join(texts).lower()
    missing = [
        written
        for written in dict.fromkeys(_NUMBER.findall(answer))
        if not _number_backed(Decimal(written.replace(",", "")), source_numbers)
    ]
    missing += [word for word in sorted(words(answer)) if word.lower() not in lowered]
    return missing


def result_used(answer: str, result: str, question: str) -> bool:
    """Whether the result backs a fact of the answer that the question alone does not."""
    not_in_question = unbacked_facts(answer, [question])
    return len(unbacked_facts(answer, [question, result])) < len(not_in_question)
