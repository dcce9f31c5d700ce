"""The toy world's one shared tokenizer: one token per character, saved as a plain HF tokenizer."""

from __future__ import annotations

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
