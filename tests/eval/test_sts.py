from __future__ import annotations

import numpy as np
import pytest
from helpers import SHARED_DATA, requires_shared_data, tiny_encoder
from scipy.stats import spearmanr

from ragkit.errors import RagkitError
from ragkit.eval import RagkitModel
from ragkit.eval.sts import read_sts, sts_spearman


@requires_shared_data
def test_reads_sts_b_and_sick_in_their_original_formats():
    a, b, scores, bounds = read_sts(SHARED_DATA / "sts/STSBenchmark/sts-test.csv")
    assert len(a) == len(b) == len(scores) == 1379 and bounds == (0.0, 5.0)
    assert (a[0], b[0], scores[0]) == ("A girl is styling her hair.", "A girl is brushing her hair.", 2.5)
    a, _, scores, bounds = read_sts(SHARED_DATA / "sts/SICK/SICK_test_annotated.txt")
    assert len(a) == 4927 and bounds == (1.0, 5.0) and min(scores) >= 1.0


def test_spearman_is_mtebs_and_equals_scipy_on_the_cosines(tmp_path):
    rows = [
        ("g", "f", "y", "1", "5.0", "A man plays a guitar.", "A man is playing a guitar."),
        ("g", "f", "y", "2", "0.5", "A cat sleeps.", "Stock markets fell sharply."),
        ("g", "f", "y", "3", "3.0", "A woman cuts onions.", "A woman is slicing vegetables."),
        ("g", "f", "y", "4", "1.0", "Kids play football.", "The train leaves at noon."),
    ]
    path = tmp_path / "sts-test.csv"
    path.write_text("".join("\t".join(r) + "\n" for r in rows))
    model = RagkitModel(tiny_encoder())
    prompt = "Retrieve semantically similar text: "  # LLM2Vec's STS instruction, on both sentences
    a = model.model.encode([r[5] for r in rows], instruction=prompt)
    b = model.model.encode([r[6] for r in rows], instruction=prompt)
    expected = spearmanr(np.sum(a * b, axis=1), [float(r[4]) for r in rows]).statistic
    assert sts_spearman(model, path) == pytest.approx(expected, abs=1e-5)


def test_a_bad_row_names_the_line(tmp_path):
    path = tmp_path / "sts-test.csv"
    path.write_text("g\tf\ty\t1\t5.0\ta\tb\nbroken row\n")
    with pytest.raises(RagkitError, match=r"sts-test\.csv:2: not an STS-B or SICK row"):
        read_sts(path)
