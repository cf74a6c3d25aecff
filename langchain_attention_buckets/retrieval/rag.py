"""Retrieval-augmented answers with citations, as an LCEL chain.

    question -> retriever -> numbered documents -> prompt -> chat model -> answer
                                                                      -> sources cited

The retrieved documents go into the prompt numbered [1], [2], ...; the model is
asked to cite them by number. The chain returns the answer, the documents it was
given, and those it cited (by number in the answer; none found means none cited).
The documents sit in a long context where a fact may land anywhere. The paper's bucket set
does not help here: on multi-document QA with the embedded model it cost 21 points
(docs/results.md), so the chat model's default (``bases="adaptive"``) answers a chain without
tools on the model's own base; docs/rag.md says what was measured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough

RAG_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Answer the question using only the documents below. Cite the documents you use by "
            "their number in square brackets, like [2]. If the documents do not say, answer that "
            "you do not know.\n\n{context}",
        ),
        ("human", "{question}"),
    ]
)


def format_documents(docs: Sequence[Document]) -> str:
    """Documents numbered from 1, each with its title (metadata "title" or "source") when it has one."""
    parts = []
    for i, doc in enumerate(docs, 1):
        title = doc.metadata.get("title") or doc.metadata.get("source")
        head = f"[{i}] {title}\n" if title else f"[{i}]\n"
        parts.append(head + doc.page_content.strip())
    return "\n\n".join(parts)


def cited(answer: str, docs: Sequence[Document]) -> list[Document]:
    """The documents whose numbers the answer cites, in order, once each."""
    numbers = [int(n) for n in re.findall(r"\[(\d+)\]", answer)]
    seen: list[int] = []
    for n in numbers:
        if 1 <= n <= len(docs) and n not in seen:
            seen.append(n)
    return [docs[n - 1] for n in seen]


def rag_chain(retriever: BaseRetriever, llm, prompt: ChatPromptTemplate = RAG_PROMPT) -> Runnable:
    """question (str) -> {"answer": str, "documents": [Document], "citations": [Document]}."""
    answer = (
        RunnablePassthrough.assign(context=lambda x: format_documents(x["documents"])) | prompt | llm | StrOutputParser()
    )
    return (
        RunnableParallel(question=RunnablePassthrough(), documents=retriever)
        | RunnablePassthrough.assign(answer=answer)
        | RunnableLambda(lambda x: {**x, "citations": cited(x["answer"], x["documents"])})
    ).with_config(run_name="RAGWithCitations")


def load_markdown_folder(folder: str | Path) -> list[Document]:
    """One document per .md file; the title is its first heading line."""
    docs = []
    for path in sorted(Path(folder).glob("*.md")):
        text = path.read_text(encoding="utf-8")
        first = text.strip().splitlines()[0] if text.strip() else path.stem
        title = first.lstrip("# ").strip()
        body = "\n".join(text.strip().splitlines()[1:]).strip()
        docs.append(Document(page_content=body, metadata={"title": title, "source": path.name}))
    return docs
