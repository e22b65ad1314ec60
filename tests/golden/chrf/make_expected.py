"""make_expected.py: reference chrF values for tests/test_eval.c, by sacreBLEU.

Writes pairs.tsv (hypothesis<TAB>reference, one pair a line) and
expected.json (each pair's sentence chrF and the corpus chrF of all of them)
with sacreBLEU's default CHRF (char order 6, word order 0, beta 2,
whitespace removed). The pairs: hand-written edge cases (accents, no-break
spaces, an empty hypothesis, references shorter than 6 characters), then
French sentences of the shipped tico19-test.tsv against edited copies and
against their neighbours. Run from the repository root with a Python that
has sacrebleu (pip install sacrebleu):

    python3 tests/golden/chrf/make_expected.py
"""
import json
import sacrebleu
from sacrebleu.metrics import CHRF

HERE = "tests/golden/chrf"
edge = [
    ("Bonjour le monde !", "Bonjour le monde !"),
    ("Bonjour le monde", "Bonjour tout le monde !"),
    ("", "Il pleut."),
    ("Il pleut.", "Oui"),
    ("a", "a"),
    ("ab", "abc"),
    ("Ça va très bien, merci.", "Ça va bien, merci."),
    ("95\u00a0ans\u202f!", "95 ans !"),
    ("l'été à Noël", "l’été à Noël"),
    ("aaaaaa aaaa", "aaaa"),
    ("nnnnnnn", "nnnnnnnnnnnnnn"),
    ("日本語のテキスト", "日本語のテキストです"),
    ("em\u2003space", "em space"),
]
french = [line.rstrip("\n").split("\t")[1] for line in open("data/en-fr/tico19-test.tsv", encoding="utf-8")][:60]
pairs = list(edge)
for i, ref in enumerate(french[:30]):
    words = ref.split()
    hyp = " ".join(words[::-1] if i % 3 == 0 else words[: max(1, len(words) - i % 4)] if i % 3 == 1 else words[1:] + ["Donc"])
    pairs.append((hyp, ref))
for i in range(30, 60):
    pairs.append((french[i - 1], french[i]))

chrf = CHRF()
sentence = [chrf.sentence_score(h, [r]).score for h, r in pairs]
corpus = chrf.corpus_score([h for h, _ in pairs], [[r for _, r in pairs]]).score
with open(f"{HERE}/pairs.tsv", "w", encoding="utf-8") as f:
    for h, r in pairs:
        f.write(f"{h}\t{r}\n")
with open(f"{HERE}/expected.json", "w", encoding="utf-8") as f:
    json.dump({"made_by": f"tests/golden/chrf/make_expected.py, sacrebleu {sacrebleu.__version__}, CHRF() defaults: "
               f"{chrf.get_signature()}", "sentence": sentence, "corpus": corpus}, f, indent=0)
print(len(pairs), "pairs, corpus chrF", corpus)
