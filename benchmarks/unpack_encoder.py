"""A built-in encoder's first adapters copied out as a chain that `ragkit adapt --model` follows.

    python benchmarks/unpack_encoder.py runs/release-0.3/adapters --adapters 3   # release 0.3
    ragkit adapt --model runs/release-0.3/adapters/3-supervised --stages distill ...

The inverse of package_encoder.py, for training on an earlier release after a later one has taken
the built-in name: each copied adapter's `base_model_name_or_path` names the adapter before it (the
first keeps the built-in base), so the last folder alone loads the base with all of them merged.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ragkit.encoders.loading import BUILTIN_ENCODERS, DEFAULT_ENCODER


def unpack(builtin: str, out: Path, count: int) -> list[Path]:
    """Copies of built-in encoder `builtin`'s first `count` adapters in `out`, chained; the folders."""
    adapters = [Path(a) for a in BUILTIN_ENCODERS[builtin].adapters[:count]]
    if len(adapters) < count:
        raise SystemExit(f"{builtin} ships {len(adapters)} adapters, not {count}")
    written: list[Path] = []
    for adapter in adapters:
        target = out / adapter.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(adapter, target)
        if written:
            config_file = target / "adapter_config.json"
            config = json.loads(config_file.read_text())
            config["base_model_name_or_path"] = str(written[-1].resolve())
            config_file.write_text(json.dumps(config, indent=2) + "\n")
        written.append(target)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the copies")
    parser.add_argument("--adapters", type=int, required=True, help="how many, from the first")
    parser.add_argument("--builtin", default=DEFAULT_ENCODER, choices=sorted(BUILTIN_ENCODERS))
    args = parser.parse_args()
    for folder in unpack(args.builtin, args.out, args.adapters):
        print(folder)
