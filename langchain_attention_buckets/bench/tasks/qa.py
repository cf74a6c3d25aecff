"""Multi-document QA over fictional facts, in the style of "Lost in the Middle".

D short documents, each about an invented place, work or group, so no model
knows the answers beforehand. One document holds the answer; about half of the
others state the same kind of fact about other entities (similar themes, other
answers). Correct if the reply contains the answer string, case-insensitively.

Two sets of document templates: `RELATIONS` (with `FILLERS`) serve by default
(the dev split) and are the ones the candidate configurations were designed and
tuned on; `heldout=True` uses `HELDOUT_RELATIONS` (with `HELDOUT_FILLERS`),
other kinds of facts (comets, bridges, scripts, manuscripts, ...) that only the
test split shows. Questions and distractors of a sample come from one set only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from .base import Item, Sample, check_settings, fictional_name, place, question_rng, reply_text

MAX_TOKENS = 32
DEFAULT_ITEMS = 20


@dataclass(frozen=True)
class Relation:
    intro: str  # about {E}; may use the filler slots below
    fact: str  # states {A} about {E}
    question: str
    closing: str


RELATIONS = (
    Relation("{E} is an island in the {sea} Sea, known for its {product}.",
             "The capital of the island of {E} is {A}.",
             "What is the capital of the island of {E}?",
             "About {n} thousand people live on the island."),
    Relation("The guild of {E} is an old guild of {trade}.",
             "The guild of {E} was founded by {first} {A}.",
             "Who founded the guild of {E}?",
             "Its members meet once a year in a hall near the {landmark}."),
    Relation("The {E} is a river that winds through {landscape}.",
             "The river {E} flows into Lake {A}.",
             "Into which lake does the river {E} flow?",
             "Its banks are lined with {tree} trees."),
    Relation("The {E} was a {vessel} that sailed the {sea} Sea for {n} years.",
             "The ship {E} was built in the harbor town of {A}.",
             "In which harbor town was the ship {E} built?",
             "Its figurehead showed a {animal}."),
    Relation("The {E} range is a chain of mountains in {landscape}.",
             "The highest peak of the {E} range is Mount {A}.",
             "What is the highest peak of the {E} range?",
             "Its slopes are home to the {animal}."),
    Relation("{E} is an opera in three acts about a {story}.",
             "The opera {E} was written by the composer {first} {A}.",
             "Who wrote the opera {E}?",
             "It was first performed in a small theater near the {landmark}."),
    Relation("{E} was a small kingdom famous for its {product}.",
             "The currency of the kingdom of {E} was the {A}.",
             "What was the currency of the kingdom of {E}?",
             "Its kings ruled for about {n} years."),
    Relation("The {E} festival is held every spring and celebrates {story}s.",
             "The {E} festival takes place in the village of {A}.",
             "In which village does the {E} festival take place?",
             "Visitors bring {product} as gifts."),
)

FILLERS = {
    "sea": ["Amber", "Northern", "Coral", "Silent", "Western", "Misty"],
    "product": ["wool", "honey", "salt", "glassware", "blue cheese", "silk", "copper bells"],
    "trade": ["clockmakers", "weavers", "glassblowers", "mapmakers", "bookbinders", "brewers"],
    "landmark": ["old bridge", "harbor", "cathedral", "market square", "lighthouse"],
    "landscape": ["a wide valley", "dense pine forests", "the eastern plains", "rolling hills"],
    "tree": ["willow", "alder", "poplar", "birch", "chestnut"],
    "vessel": ["merchant ship", "whaling ship", "three-masted frigate", "fishing schooner"],
    "animal": ["snow leopard", "golden eagle", "mountain goat", "red fox", "sea lion"],
    "story": ["lost queen", "stolen crown", "shipwrecked sailor", "forgotten harvest", "clever miller"],
    "first": ["Mira", "Jonas", "Elena", "Tomas", "Ada", "Felix", "Ines", "Oskar"],
    "n": ["12", "40", "75", "120", "300"],
}


HELDOUT_RELATIONS = (
    Relation("{E} is a comet that returns every {period} years and is best seen from the {hemisphere}.",
             "The comet {E} was discovered by the astronomer {first} {A}.",
             "Who discovered the comet {E}?",
             "Its tail glows {color} when it passes the sun."),
    Relation("The {E} bridge is a {material} bridge over a {water}.",
             "The {E} bridge leads to the town of {A}.",
             "To which town does the {E} bridge lead?",
             "Carts crossed it for about {n} years before it was closed to traffic."),
    Relation("{E} is a language spoken by about {n} thousand {people}.",
             "The {E} language is written in the {A} script.",
             "In which script is the {E} language written?",
             "Its speakers tell long stories during the {season}."),
    Relation("The monastery library of {E} keeps manuscripts on {surface} and parchment.",
             "The oldest book in the library of {E} is the Codex {A}.",
             "What is the oldest book in the library of {E}?",
             "Scholars may read there only in the {season}."),
    Relation("The {E} is a breed of horse raised on {terrain}.",
             "The {E} horse breed was first bred on the estate of {A}.",
             "On which estate was the {E} horse breed first bred?",
             "Its coat is usually {color}."),
    Relation("The {E} is a folk dance performed at {occasion}.",
             "The music of the {E} dance is always played on an instrument called the {A}.",
             "On which instrument is the music of the {E} dance played?",
             "Dancers wear {color} scarves and move in a circle."),
    Relation("{E} is a hard cheese made from the milk of {herd}.",
             "The cheese {E} is aged in the caves of {A}.",
             "In which caves is the cheese {E} aged?",
             "A wheel ripens for about {period} months."),
    Relation("{E} is a painting of {scene}.",
             "The painting {E} hangs in the {A} Gallery.",
             "In which gallery does the painting {E} hang?",
             "It was painted on {panel} in muted {color} tones."),
)
"""Kinds of facts that `RELATIONS` does not hold, for the built-in test split only."""

HELDOUT_FILLERS = {
    "period": ["6", "11", "38", "74", "130"],
    "hemisphere": ["northern hemisphere", "southern hemisphere"],
    "color": ["green", "amber", "silver", "violet", "rust-red"],
    "material": ["granite", "oak", "brick", "limestone", "iron"],
    "surface": ["palm leaves", "birch bark", "papyrus", "vellum"],
    "panel": ["canvas", "an oak panel", "copper", "linen"],
    "water": ["narrow gorge", "tidal channel", "slow canal", "mountain stream"],
    "people": ["reindeer herders", "salt traders", "island fishers", "hill farmers"],
    "season": ["long winter nights", "rainy season", "first weeks of autumn", "summer solstice"],
    "terrain": ["windswept moors", "high steppes", "marshy lowlands", "terraced slopes"],
    "occasion": ["weddings", "the end of the grape harvest", "midwinter feasts", "launches of new boats"],
    "herd": ["black-faced sheep", "mountain goats", "water buffalo", "red cattle"],
    "scene": ["a quiet harbor at dawn", "a crowded fish market", "two sisters reading", "a storm over wheat fields"],
    "first": ["Lucia", "Anders", "Noor", "Bram", "Yara", "Emil", "Rosa", "Teodor"],
    "n": ["8", "25", "60", "150", "400"],
}


@dataclass(frozen=True)
class QASample(Sample):
    def messages(self, items: Sequence[Item] | None = None) -> list[BaseMessage]:
        items = self.items if items is None else items
        docs = "\n\n".join(f"Document [{j + 1}] {it.text}" for j, it in enumerate(items))
        text = (
            "Answer the question using only the documents below. Give a short answer.\n\n"
            f"{docs}\n\nQuestion: {self.question}\nAnswer:"
        )
        return [HumanMessage(text)]

    def score(self, message: AIMessage) -> dict[str, bool]:
        return {"correct": self.answer.lower() in reply_text(message).lower()}


def _document(
    rel: Relation, rng: random.Random, taken: set[str], fillers: dict[str, list[str]] = FILLERS
) -> tuple[Item, str, str]:
    """A document stating `rel` about a new entity: (item, question, answer)."""
    entity, answer = fictional_name(rng, taken), fictional_name(rng, taken)
    fill = {k: rng.choice(v) for k, v in fillers.items()}
    fill.update(E=entity, A=answer)
    body = " ".join(t.format(**fill) for t in (rel.intro, rel.fact, rel.closing))
    return Item(id=entity, text=f"(Title: {entity}) {body}"), rel.question.format(**fill), answer


def make_samples(
    *, n_items: int, positions: Sequence[int], samples_per_position: int, seed: int, heldout: bool = False
) -> list[Sample]:
    """Questions x positions: D = `n_items` documents, the answering one at each position.

    Args:
        heldout: Build every document from `HELDOUT_RELATIONS` instead of `RELATIONS`.
    """
    check_settings(n_items, positions, samples_per_position)
    relations, fillers = (HELDOUT_RELATIONS, HELDOUT_FILLERS) if heldout else (RELATIONS, FILLERS)
    samples: list[Sample] = []
    for q in range(samples_per_position):
        rng = question_rng("qa", seed, n_items, q)
        taken: set[str] = set()
        rel = rng.choice(relations)
        gold, question, answer = _document(rel, rng, taken, fillers)
        # About half the distractors state the same kind of fact about other entities.
        others = [_document(rel if rng.random() < 0.5 else rng.choice(relations), rng, taken, fillers)[0]
                  for _ in range(n_items - 1)]
        for pos in positions:
            samples.append(QASample("qa", q, pos, place(gold, others, pos), question, answer))
    return samples
