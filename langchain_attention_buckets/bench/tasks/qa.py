"""Multi-document QA over fictional facts, in the style of "Lost in the Middle".

D short documents, each about an invented place, work or group, so no model
knows the answers beforehand. One document holds the answer; about half of the
others state the same kind of fact about other entities (similar themes, other
answers). Correct if the reply contains the answer string, case-insensitively.
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


def _document(rel: Relation, rng: random.Random, taken: set[str]) -> tuple[Item, str, str]:
    """A document stating `rel` about a new entity: (item, question, answer)."""
    entity, answer = fictional_name(rng, taken), fictional_name(rng, taken)
    fill = {k: rng.choice(v) for k, v in FILLERS.items()}
    fill.update(E=entity, A=answer)
    body = " ".join(t.format(**fill) for t in (rel.intro, rel.fact, rel.closing))
    return Item(id=entity, text=f"(Title: {entity}) {body}"), rel.question.format(**fill), answer


def make_samples(
    *, n_items: int, positions: Sequence[int], samples_per_position: int, seed: int
) -> list[Sample]:
    """Questions x positions: D = `n_items` documents, the answering one at each position."""
    check_settings(n_items, positions, samples_per_position)
    samples: list[Sample] = []
    for q in range(samples_per_position):
        rng = question_rng("qa", seed, n_items, q)
        taken: set[str] = set()
        rel = rng.choice(RELATIONS)
        gold, question, answer = _document(rel, rng, taken)
        # About half the distractors state the same kind of fact about other entities.
        others = [_document(rel if rng.random() < 0.5 else rng.choice(RELATIONS), rng, taken)[0]
                  for _ in range(n_items - 1)]
        for pos in positions:
            samples.append(QASample("qa", q, pos, place(gold, others, pos), question, answer))
    return samples
