"""Retrieval-augmented generation with ragkit: retrieve chunks, put them in a prompt, let an LLM answer.

    ragkit index examples/corpus      # with the built-in encoder llm2vec-smollm2-135m
    python examples/rag.py "Why did the Bastille matter?"

The generator here is SmolLM2-135M-Instruct, the model the built-in encoder was adapted from, so the example
runs offline; any chat model (or API) slots in where `generate` is called.
"""

from __future__ import annotations

import os
import sys

from transformers import AutoModelForCausalLM, AutoTokenizer

from ragkit.encoders.loading import resolve
from ragkit.index import Retriever


def build_prompt(question: str, hits) -> str:
    context = "\n\n".join(f"[{i}] ({hit.path}) {hit.text.strip()}" for i, hit in enumerate(hits, 1))
    return (
        "Answer the question using only the context below, and cite the passages you used.\n\n"
        f"Context:\n{context}\n\nQuestion: {question}"
    )


def main(question: str, index_dir: str = os.environ.get("RAGKIT_INDEX", "ragkit-index")) -> None:
    retriever = Retriever.load(index_dir)
    hits = retriever.search(question, k=2)
    prompt = build_prompt(question, hits)

    weights = resolve("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(weights)
    llm = AutoModelForCausalLM.from_pretrained(weights)
    messages = [{"role": "user", "content": prompt}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = llm.generate(**inputs, max_new_tokens=80, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    print("retrieved:", ", ".join(f"{h.path} ({h.score:.3f})" for h in hits))
    print("answer:", answer.strip())


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "Why did the Bastille matter?")
