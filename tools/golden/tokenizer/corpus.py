"""Deterministic varied English text for tokenizer training and benchmarks.

    python3 corpus.py BYTES [SEED] > out.txt

Paragraphs of prose built from templates and word lists, with dialogue,
contractions, numbers, lists, a little code and the odd non-ASCII word, so a
tokenizer sees the shapes real text has. Same arguments, same bytes.
"""
import random
import sys

NOUNS = """time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government number night
point home water room mother area money story fact month lot right study book eye job word business issue
side kind head house service friend father power hour game line end member law car city community name
president team minute idea kid body information back parent face others level office door health person
art war history party result change morning reason research girl guy moment air teacher force education
river garden window letter engine market village ocean forest bridge island mountain machine kitchen""".split()
VERBS = """found made took gave kept left brought began ran wrote held built bought drew chose carried opened
closed watched followed answered remembered forgot painted fixed cleaned measured counted tested""".split()
ADJS = """good new first last long great little own other old right big high different small large next early
young important few public bad same able quiet bright careful strange gentle heavy narrow ancient
curious patient simple hidden golden broken silent""".split()
ADVS = "slowly quickly quietly carefully suddenly finally rarely often always never gently".split()
NAMES = "Alice Bob Carol David Emma Farid Grace Hiro Ines Jamal Kofi Lena Mateo Nadia Omar Priya Ravi Sofia Tomas Yuki".split()
PLACES = "Lisbon Nairobi Osaka Quito Berlin Cairo Dublin Hanoi Lima Oslo Perth Seoul Tunis Zagreb".split()
FOREIGN = "café naïve façade jalapeño Zürich São Paulo Ångström résumé smörgåsbord coöperate".split()
CONTR = "it's don't can't won't I'm you're they've we'll she'd isn't wasn't didn't that's there's let's".split()


def sentence(r):
    k = r.randrange(9)
    n1, n2 = r.choice(NOUNS), r.choice(NOUNS)
    a, v, who = r.choice(ADJS), r.choice(VERBS), r.choice(NAMES)
    if k == 0:
        return f"The {a} {n1} {v} the {n2} {r.choice(ADVS)}."
    if k == 1:
        return f"{who} {v} {r.randrange(2, 999)} {n1}s in {r.choice(PLACES)} in {r.randrange(1850, 2030)}."
    if k == 2:
        return f'"{r.choice(CONTR).capitalize()} {a}," said {who}, "but the {n1} {v} it."'
    if k == 3:
        return f"Why {r.choice(['did', 'does', 'would'])} the {n1} need a {a} {n2}?"
    if k == 4:
        return f"It cost ${r.randrange(1, 500)}.{r.randrange(100):02d}, about {r.randrange(3, 97)}% of the {n2}'s budget."
    if k == 5:
        return f"{who} ordered a {r.choice(FOREIGN)} near the {a} {n1}; {r.choice(CONTR)} what {who} wanted."
    if k == 6:
        return f"After {r.randrange(2, 60)} minutes, the {n1} and the {n2} were {a} again!"
    if k == 7:
        return f"{who} {r.choice(ADVS)} {v} a {n1}, then another {n1}, then a {a} {n2}."
    return f"We {v} the {n1} ({a}, {r.choice(ADJS)}) and {r.choice(CONTR)} over."


def block(r):
    k = r.randrange(12)
    if k == 0:
        items = "\n".join(f"{i + 1}. {sentence(r)}" for i in range(r.randrange(2, 5)))
        return f"{r.choice(NAMES)}'s list:\n{items}"
    if k == 1:
        n, v = r.choice(NOUNS), r.randrange(100)
        return f"def count_{n}(items):\n    total = {v}\n    for x in items:\n        total += x * 2\n    return total\n"
    if k == 2:
        return "\n".join(f"- {r.choice(ADJS)} {r.choice(NOUNS)}: {r.randrange(10000)}" for _ in range(3))
    return " ".join(sentence(r) for _ in range(r.randrange(2, 7)))


def main():
    size = int(sys.argv[1])
    r = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    out, n = [], 0
    while n < size:
        b = block(r) + "\n\n"
        out.append(b)
        n += len(b.encode())
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
