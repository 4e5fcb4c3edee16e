"""The tokenizer component (target/wasm32-wasip2/wasm/tokenizer.wasm) from Python, through the
`wasmtime` package: the same bytes the browser worker runs, called through its WIT exports."""

from pathlib import Path

import wasmtime
import wasmtime.component as wc

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "target" / "wasm32-wasip2" / "wasm" / "tokenizer.wasm"
IFACE = "secure-context:inference/tokenizer@0.1.0"


class TokError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _field(record, name):
    return getattr(record, name)


def plain_encoding(e):
    """A WIT `encoding` record as a dict of lists (offsets as (start, end) tuples)."""
    out = {k.replace("-", "_"): list(_field(e, k)) for k in (
        "ids", "type-ids", "tokens", "attention-mask", "special-tokens-mask", "word-ids",
        "sequence-ids")}
    out["offsets"] = [(s.start, s.end) for s in e.offsets]
    return out


class Tokenizers:
    """One instance of the component; `load` gives a handle for the other calls."""

    def __init__(self, component: Path = COMPONENT):
        config = wasmtime.Config()
        config.cache = True
        engine = wasmtime.Engine(config)
        linker = wc.Linker(engine)
        linker.add_wasip2()
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.instance = linker.instantiate(self.store, wc.Component.from_file(engine, str(component)))
        self.iface = self.instance.get_export_index(self.store, IFACE)

    def _call(self, name, *args):
        func = self.instance.get_func(self.store, self.instance.get_export_index(self.store, name, self.iface))
        result = func(self.store, *args)
        func.post_return(self.store)
        return result

    @staticmethod
    def _ok(result):
        if isinstance(result, wc.Variant):
            if result.tag == "ok":
                return result.payload
            raise TokError(result.payload.code, result.payload.message)
        # wasmtime-py lifts `result<T, error>` to the value, or raises/returns the error record.
        if hasattr(result, "code") and hasattr(result, "message") and not hasattr(result, "ids"):
            raise TokError(result.code, result.message)
        return result

    def load(self, json_bytes: bytes):
        return self._ok(self._call("[static]tokenizer.load", json_bytes))

    @staticmethod
    def options(offsets="code-points", add_special_tokens=True, truncation=None):
        o = wc.Record()
        setattr(o, "add-special-tokens", add_special_tokens)
        o.offsets = offsets
        if truncation is not None:
            t = wc.Record()
            setattr(t, "max-length", truncation[0])
            t.stride = truncation[1]
            truncation = t
        o.truncation = truncation
        return o

    def info(self, tok):
        i = self._call("[method]tokenizer.info", tok)
        tr = i.truncation
        return {"model": i.model, "vocab_size": getattr(i, "vocab-size"), "padding": i.padding,
                "truncation": None if tr is None else (getattr(tr, "max-length"), tr.stride)}

    def encode(self, tok, text, pair=None, **kw):
        r = self._ok(self._call("[method]tokenizer.encode", tok, text, pair, self.options(**kw)))
        return plain_encoding(r.encoding), [plain_encoding(o) for o in r.overflowing]

    def encode_batch(self, tok, texts, **kw):
        rs = self._ok(self._call("[method]tokenizer.encode-batch", tok, list(texts), self.options(**kw)))
        return [(plain_encoding(r.encoding), [plain_encoding(o) for o in r.overflowing]) for r in rs]

    def decode(self, tok, ids, skip_special_tokens=True):
        return self._ok(self._call("[method]tokenizer.decode", tok, list(ids), skip_special_tokens))

    def token_to_id(self, tok, token):
        return self._call("[method]tokenizer.token-to-id", tok, token)

    def id_to_token(self, tok, i):
        return self._call("[method]tokenizer.id-to-token", tok, i)
