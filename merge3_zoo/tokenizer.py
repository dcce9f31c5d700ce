"""The toy world's one shared tokenizer: one token per character, saved as a plain HF tokenizer."""

from __future__ import annotations

import shutil
from pathlib import Path

from .skills import ALPHABET

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


class CharCodec:
    """Fast encode for training; `save` writes the equivalent HF tokenizer for everyone else."""

    def __init__(self, alphabet: str = ALPHABET):
        self.tokens = SPECIALS + list(alphabet)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(4)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, self.unk_id) for c in text]

    def decode(self, ids) -> str:
        return "".join(self.tokens[i] for i in ids if i >= len(SPECIALS))

    def hf_tokenizer(self):
        from tokenizers import Tokenizer, decoders, models
        from transformers import PreTrainedTokenizerFast

        # BPE with no merges splits text into single characters; Fuse joins them back.
        core = Tokenizer(models.BPE(vocab=dict(self.index), merges=[], unk_token="<unk>"))
        core.decoder = decoders.Fuse()
        return PreTrainedTokenizerFast(
            tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
        )

    def save(self, directory: Path) -> None:
        self.hf_tokenizer().save_pretrained(str(directory))


# What a pre-trained model's tokenizer is made of (copied as files, never re-saved: a re-save through
# the installed transformers can change the format, see mergekit_ext/compat.copy_tokenizer).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json")


class PretrainedCodec:
    """A pre-trained model's own tokenizer behind the CharCodec interface (encode, pad_id, save)."""

    def __init__(self, folder: Path | str):
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id

    def encode(self, text: str) -> list[int]:
        # no BOS: lm-eval's HF model adds none for Llama-type models, and training should see what eval sees
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def save(self, directory: Path) -> None:
        for name in TOKENIZER_FILES:
            if (self.folder / name).exists():
                shutil.copy2(self.folder / name, Path(directory) / name)


def codec_for(tokenizer_folder: str | None):
    """The world's tokenizer: a pre-trained base's own (its folder), else the shared character codec."""
    return CharCodec() if tokenizer_folder is None else PretrainedCodec(tokenizer_folder)
