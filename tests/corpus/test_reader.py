"""Corpus reading: every supported format, skipped and badly encoded files counted, never fatal."""

from __future__ import annotations

import gzip
import json

import pytest
from helpers import SHARED_DATA, requires_shared_data

from ragkit import RagkitError
from ragkit.corpus import Fields, ReadStats, list_files, read_documents


def read_all(root, fields=None):
    stats = ReadStats()
    docs = {}
    for file in list_files(root):
        for doc in read_documents(file, fields or Fields(), stats):
            docs[doc.doc_id] = (file.relpath, doc)
    return docs, stats


def test_each_format_yields_its_documents(tmp_path):
    (tmp_path / "a.txt").write_text("Plain text.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("intro\n# The Title\nMarkdown body.")
    (tmp_path / "c.rst").write_text("Restructured text.")
    (tmp_path / "d.html").write_text(
        "<html><head><title>Page</title><script>var hidden = 1;</script></head>"
        "<body><p>Visible &amp; kept.</p><style>p {}</style><div>Second block.</div></body></html>"
    )
    (tmp_path / "e.jsonl").write_text(
        json.dumps({"id": "e1", "title": "T1", "text": "first", "lang": "en", "nested": {"x": 1}})
        + "\n\n"
        + json.dumps({"text": "no id"})
        + "\n"
    )
    (tmp_path / "f.json").write_text(json.dumps([{"_id": "f1", "text": "from json"}]))
    (tmp_path / "g.csv").write_text("id,title,text,year\ng1,CSV title,from csv,1999\n")
    with gzip.open(tmp_path / "h.txt.gz", "wt") as f:
        f.write("gzipped text")
    (tmp_path / ".hidden.txt").write_text("never read")

    docs, stats = read_all(tmp_path)
    assert docs["a.txt"][1].text == "Plain text."
    assert docs["sub/b.md"][1].title == "The Title"
    assert docs["c.rst"][1].text == "Restructured text."
    html = docs["d.html"][1]
    assert (html.title, html.text) == ("Page", "Visible & kept.\nSecond block.")
    e1 = docs["e1"][1]
    assert (e1.title, e1.text, e1.metadata) == ("T1", "first", {"lang": "en"})
    assert docs["e.jsonl#1"][1].text == "no id"  # no id field: path and line number
    assert docs["f1"][1].text == "from json"
    assert (docs["g1"][1].title, docs["g1"][1].metadata) == ("CSV title", {"year": "1999"})
    assert docs["h.txt.gz"][1].text == "gzipped text"
    assert not any(path.startswith(".") for path, _ in docs.values())
    assert not stats.skipped


def test_binary_unsupported_and_broken_files_are_skipped_and_counted(tmp_path):
    (tmp_path / "good.txt").write_text("fine")
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "broken.jsonl").write_text('{"text": "ok"}\n{not json\n')
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    docs, stats = read_all(tmp_path)
    assert set(docs) == {"good.txt", "latin1.txt"}
    assert docs["latin1.txt"][1].text == "caf\ufffd"
    assert stats.replaced_decoding == 1
    assert stats.skipped == {"binary": 1, "unsupported type": 2, "unreadable (invalid JSON)": 1}


def test_pdf_without_pypdf_is_skipped_with_a_hint(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pypdf(name, *args, **kwargs):
        if name == "pypdf":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pypdf)
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4")
    _, stats = read_all(tmp_path)
    assert stats.skipped == {"PDF (pip install pypdf to read PDFs)": 1}


def test_fields_are_configurable_and_a_missing_text_field_skips_the_file(tmp_path):
    (tmp_path / "q.jsonl").write_text(json.dumps({"key": "k1", "body": "the body", "head": "H"}) + "\n")
    docs, _ = read_all(tmp_path, Fields(text="body", title="head", id=("key",)))
    assert (docs["k1"][1].text, docs["k1"][1].title) == ("the body", "H")
    _, stats = read_all(tmp_path)  # default field "text" is absent
    assert stats.skipped == {"unreadable (ValueError)": 1}


def test_empty_documents_are_dropped_and_counted(tmp_path):
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"_id": "1", "text": ""}) + "\n" + json.dumps({"_id": "2", "text": "x"})
    )
    docs, stats = read_all(tmp_path)
    assert set(docs) == {"2"} and stats.empty_documents == 1


def test_missing_corpus_is_an_error(tmp_path):
    with pytest.raises(RagkitError, match="does not exist"):
        list_files(tmp_path / "nope")


@requires_shared_data
def test_a_beir_corpus_reads_with_the_default_fields():
    docs, stats = read_all(SHARED_DATA / "cranfield" / "corpus.jsonl.gz")
    assert len(docs) == 1398 and stats.empty_documents == 2  # docs 471 and 995 are empty upstream
    path, doc = docs["1"]
    assert path == "corpus.jsonl.gz" and doc.title.startswith("experimental investigation")


def test_a_corrupt_gzip_is_skipped_and_counted_and_embed_f_says_so_in_one_line(tmp_path):
    import gzip as gz

    from ragkit.corpus import read_lines

    good = gz.compress(b"line one\nline two\n" * 50)
    corrupt = good[:20] + bytes(b ^ 0xFF for b in good[20:40]) + good[40:]  # a bad deflate block
    (tmp_path / "bad.txt.gz").write_bytes(corrupt)
    stats = ReadStats()
    files = list_files(tmp_path)
    assert read_documents(files[0], Fields(), stats) == []
    assert sum(stats.skipped.values()) == 1 and "unreadable" in next(iter(stats.skipped))
    with pytest.raises(RagkitError, match=r"bad\.txt\.gz: cannot read it"):
        read_lines(tmp_path / "bad.txt.gz")


def test_read_stats_travel_as_json_and_add_up():
    from collections import Counter

    one = ReadStats(Counter({"binary file": 2}), replaced_decoding=1, empty_documents=3)
    total = ReadStats()
    total.add(json.loads(json.dumps(one.to_json())))  # as a Ray task sends them
    total.add(one.to_json())
    assert total == ReadStats(Counter({"binary file": 4}), replaced_decoding=2, empty_documents=6)


def test_a_file_name_that_is_not_utf8_is_listed_with_escapes_and_read(tmp_path):
    import os

    (tmp_path / "good.md").write_text("# Good\nfine text")
    with open(os.path.join(os.fsencode(tmp_path), b"bad\xff.md"), "w") as f:
        f.write("# Bad name\ntext of a file named in Latin-1")
    files = list_files(tmp_path)
    assert [f.relpath for f in files] == ["bad\\xff.md", "good.md"]
    docs = read_documents(files[0], Fields(), ReadStats())
    assert docs[0].doc_id == "bad\\xff.md" and docs[0].title == "Bad name"


def test_a_csv_cell_past_the_csv_modules_default_limit_is_read(tmp_path):
    long = "word " * 40_000  # 200,000 characters, past csv's 131,072
    path = tmp_path / "big.csv"
    path.write_text(f'id,text\na,"{long}"\nb,short row\n')
    (file,) = list_files(path)
    stats = ReadStats()
    docs = read_documents(file, Fields(), stats)
    assert [d.doc_id for d in docs] == ["a", "b"] and len(docs[0].text) == len(long) and not stats.skipped


def test_nan_in_json_lines_is_invalid_json_not_a_number(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "a", "text": "fine", "score": NaN}\n')
    (file,) = list_files(path)
    stats = ReadStats()
    assert read_documents(file, Fields(), stats) == [] and stats.skipped == {"unreadable (invalid JSON)": 1}
