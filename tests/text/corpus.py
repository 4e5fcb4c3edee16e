"""The text corpus the tokenizer component is checked on against Hugging Face `tokenizers`.

Hand-written cases for what tokenizers get wrong (scripts, normalization, whitespace, control
characters, emoji sequences, offsets), the synthetic clinical notes of the PII demo, and seeded
random strings over many Unicode blocks, short and long. Deterministic: the same list on every
machine. No real person's data: every name, number and place in it is made up.
"""

import random

from notes import NOTES

HAND = [
    "",
    " ",
    "a",
    "Hello, world!",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nand\u000bvertical\u000cform feeds",
    "control \u0000 nul \u0007 bell \u001b escape \u007f delete \u0085 next-line",
    "zero\u200bwidth\u200cnon\u200djoiner \ufeffbom \u2060word-joiner \u00adsoft-hyphen",
    "no\u00a0break\u2009thin\u3000ideographic\u2028line\u2029paragraph spaces",
    # Accents, precomposed and decomposed (combining marks), and case.
    "Café naïve résumé Zürich São Paulo Ångström Øresund Łódź",
    "Cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030angstro\u0308m",
    "ÉCOLE ÉLÉMENTAIRE, straße STRASSE, İstanbul ıi, ǅemal ǈ",
    "Z\u0351\u0356a\u0360\u0347l\u0353g\u0361o\u0315 combining stacks",
    # CJK, Japanese, Korean (Hangul syllables and jamo), Thai, Devanagari, Tamil.
    "北京是中华人民共和国的首都。患者于二〇二四年入院。",
    "東京都港区六本木、カタカナとひらがな、全角ＡＢＣ１２３",
    "서울특별시 강남구 테헤란로 한국어 문장입니다. 한\u1100\u1161",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "हिन्दी में लिखा गया वाक्य, क्षत्रिय",
    "தமிழ் மொழி எழுத்துக்கள்",
    # Right-to-left, with direction marks and mixed numbers.
    "مرحبا بالعالم، رقم الهاتف ٠١٢٣٤٥٦٧٨٩",
    "שלום עולם \u200fכתובת\u200e 123 רחוב הרצל",
    "\u202eoverride\u202c and \u2067isolate\u2069 marks",
    # Emoji: single, ZWJ sequences, skin tones, flags, keycaps, variation selectors.
    "😀 🤖 👍🏽 👩‍⚕️ 👨‍👩‍👧‍👦 🏳️‍🌈 🇺🇸🇫🇷 1️⃣ ❤️ ☺︎",
    "emoji😀inside🤖words and 🧑🏿‍🔬",
    # Numbers, identifiers, contact details, code.
    "MRN 00123456, DOB 03/14/1962, SSN 123-45-6789, tel +1 (555) 010-2030 ext. 7",
    "email: jane.roe+test@example.org, url https://example.com/a?b=c&d=e#f",
    "3.14159 1,000,000 1e-10 0x1F 50% $12.50 €9,99 ¥100 ½ ² ⅓",
    "def f(x):\n    return x ** 2  # comment\n{\"json\": [1, 2, 3]}",
    "ALLCAPS lowercase MiXeD camelCaseWord snake_case_word kebab-case-word",
    "don't won't it's I'm we've they'll you'd rock'n'roll",
    "Hello!!!??? ...--- ''\"\" «quotes» „Anführung“ 「括弧」",
    "unknown chars: \U0001d54f\U0001d552\U0001d55d \U00010348 \U000e0041 \uffff \U0010fffd",
    "a" * 300,
    "supercalifragilisticexpialidocious" * 8,
    "word " * 700,
]

# Unicode blocks the random strings draw from (inclusive ranges), weighted toward text.
BLOCKS = [
    (0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF),
    (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F),
    (0x1100, 0x11FF), (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
    (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0x0, 0x1F),
]


def _random_text(rng, n):
    out = []
    for _ in range(n):
        lo, hi = rng.choice(BLOCKS)
        c = rng.randint(lo, hi)
        if 0xD800 <= c <= 0xDFFF:
            c = 0x20
        out.append(chr(c))
        if rng.random() < 0.15:
            out.append(" ")
    return "".join(out)


def corpus(seed=13):
    rng = random.Random(seed)
    texts = list(HAND) + list(NOTES)
    texts += [_random_text(rng, rng.randint(1, 40)) for _ in range(150)]
    texts += [_random_text(rng, rng.randint(500, 3000)) for _ in range(8)]
    # A long note: every demo note joined, ~4 windows of the PII model.
    texts.append("\n\n".join(NOTES) * 3)
    return texts
