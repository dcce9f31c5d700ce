"""Rows of a small dataset the user downloaded: a Hugging Face `save_to_disk` folder, a .jsonl, .json
or .parquet file, or a folder of such files (what `huggingface-cli download --repo-type dataset`
leaves). Rows keep the file's order: for the tinyBenchmarks datasets, row k is anchor k."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError

EXTENSIONS = (".parquet", ".jsonl", ".json")
_METADATA = {"dataset_info.json", "state.json", "dataset_dict.json"}


def find(root: Path, name: str) -> Path:
    """root/name, root/name.<ext>: the first that exists."""
    for candidate in (root / name, *(root / f"{name}{ext}" for ext in EXTENSIONS)):
        if candidate.exists():
            return candidate
    raise UserError(f"{root}: no {name} (a folder saved with save_to_disk, a folder of .parquet/.jsonl files, or "
                    f"{name}.jsonl / .json / .parquet)")


def read_rows(path: Path, split: str, config: str | None = None) -> list[dict]:
    """Every row of `path` (the split `split`, config `config` where the folder holds several)."""
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        return _saved(path, split)
    files = [path] if path.is_file() else _data_files(path, split, config)
    rows = []
    for f in files:
        rows.extend(_file_rows(f))
    return rows


def _saved(path: Path, split: str) -> list[dict]:
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except Exception as err:  # datasets raises several kinds for a damaged folder
        raise UserError(f"{path}: cannot read the saved dataset ({err})") from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise UserError(f"{path}: the saved dataset has no split {split!r} (it has {', '.join(data)})")
        data = data[split]
    return [dict(row) for row in data]


def _data_files(folder: Path, split: str, config: str | None) -> list[Path]:
    files = sorted(f for f in folder.rglob("*") if f.suffix in EXTENSIONS and f.name not in _METADATA
                   and not any(part.startswith(".") for part in f.relative_to(folder).parts))
    if config is not None and any(config in f.relative_to(folder).parts for f in files):
        files = [f for f in files if config in f.relative_to(folder).parts]
    if len(files) > 1:
        files = [f for f in files if f.name.startswith(split) or split in f.relative_to(folder).parts[:-1]]
    if not files:
        raise UserError(f"{folder}: no .parquet/.jsonl/.json file of split {split!r}")
    return files


def _file_rows(path: Path) -> list[dict]:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except (OSError, ValueError, ImportError) as err:
        raise UserError(f"{path}: cannot read rows ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        data = data["rows"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UserError(f"{path}: expected a JSON list of objects (one per row)")
    return data
