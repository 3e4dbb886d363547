"""Deterministic template text for synthetic posts: tone follows quality and divisiveness, hashtags
follow the topic, and divisive posts name an out-group (chosen by the author's leaning)."""

from __future__ import annotations

import numpy as np

SUBJECTS: dict[str, list[str]] = {
    "politics": [
        "the new budget bill",
        "the election debate",
        "the senate vote",
        "tax reform",
        "the immigration plan",
        "the city council race",
    ],
    "news": [
        "this morning's headlines",
        "the bridge closure",
        "the strike downtown",
        "the court ruling",
        "the storm warning",
        "the press conference",
    ],
    "sports": [
        "last night's match",
        "the transfer window",
        "the playoff race",
        "the marathon",
        "our striker",
        "the final quarter",
    ],
    "music": ["the new album", "this live set", "the festival lineup", "a vinyl find", "that bassline", "the tour"],
    "science": [
        "the new telescope images",
        "a CRISPR result",
        "the preprint on sleep",
        "this fossil find",
        "the physics lecture",
        "a replication study",
    ],
    "gaming": [
        "the speedrun record",
        "the patch notes",
        "this indie game",
        "the raid last night",
        "the new console",
        "a retro cartridge",
    ],
    "food": [
        "this sourdough",
        "a ramen recipe",
        "the farmers market",
        "my grandmother's stew",
        "street tacos",
        "a vegan curry",
    ],
    "movies": [
        "the festival winner",
        "this director's cut",
        "the trailer",
        "a noir classic",
        "the sequel",
        "the soundtrack",
    ],
    "tech": [
        "the new framework release",
        "an outage postmortem",
        "open-source funding",
        "the chip launch",
        "a database benchmark",
        "the AI model release",
    ],
    "art": [
        "the gallery opening",
        "this watercolor",
        "a street mural",
        "the sketchbook",
        "the sculpture park",
        "a printmaking class",
    ],
    "books": [
        "the novel I finished",
        "this poetry collection",
        "the book club pick",
        "a used bookstore",
        "the memoir",
        "a translation",
    ],
    "travel": [
        "the night train",
        "a mountain hut",
        "the old town",
        "a ferry crossing",
        "the packing list",
        "a road trip",
    ],
    "fashion": [
        "the thrifted jacket",
        "runway week",
        "a tailoring tip",
        "the sneaker drop",
        "capsule wardrobes",
        "the vintage market",
    ],
    "fitness": [
        "my first 10k",
        "the deadlift PR",
        "a mobility routine",
        "the rest day",
        "cycling intervals",
        "the climbing gym",
    ],
    "finance": [
        "the rate decision",
        "index funds",
        "the housing market",
        "a budgeting spreadsheet",
        "the earnings call",
        "inflation numbers",
    ],
    "climate": [
        "the heatwave",
        "the emissions report",
        "heat pumps",
        "the flood defences",
        "the carbon tax",
        "the solar farm",
    ],
    "health": [
        "the vaccine update",
        "sleep hygiene",
        "the clinic waitlist",
        "a nutrition study",
        "burnout",
        "the flu season",
    ],
    "pets": ["my cat", "the rescue dog", "the parrot", "a hamster maze", "the vet visit", "the kitten"],
    "comedy": [
        "the open mic",
        "a sitcom rerun",
        "this pun",
        "the sketch show",
        "a stand-up special",
        "my terrible joke",
    ],
    "education": [
        "the new curriculum",
        "homework policy",
        "a great teacher",
        "student loans",
        "the exam season",
        "online courses",
    ],
}

THOUGHTFUL = [
    "Spent the evening reading about {s}. A few notes, with sources, in the thread below.",
    "Interesting take on {s}: the details matter more than the headline suggests.",
    "I changed my mind about {s} after looking at the numbers. Here is why.",
    "Quiet appreciation post for {s}. Genuinely well done.",
    "A short explainer on {s}, for anyone who missed the context.",
]
CASUAL = [
    "ok {s} is actually kind of great",
    "anyone else thinking about {s} today?",
    "{s}. that's the post.",
    "can't stop thinking about {s} lol",
    "hot take: {s} is overrated",
]
DIVISIVE = [
    "Of course {g} are lying about {s} again. Wake up.",
    "{s} proves {g} want to ruin everything. Disgraceful.",
    "Anyone defending {s} is part of the problem. {G} never learn.",
    "Unbelievable. {G} just showed who they really are on {s}.",
    "If you still side with {g} on {s}, unfollow me now.",
]
REPLIES = [
    "@{a} agreed, well put.",
    "@{a} not sure about this one, do you have a source?",
    "@{a} this is the best thing I've read today",
    "@{a} respectfully, no.",
    "@{a} ha, exactly what I was thinking",
    "@{a} you have got to be kidding.",
]
OUT_GROUP = {-1: "the right", 1: "the left", 0: "those people"}


def render_posts(
    topics: list[str],
    topic: np.ndarray,
    quality: np.ndarray,
    divisiveness: np.ndarray,
    author_leaning: np.ndarray,
    rng: np.random.Generator,
    reply_parent_author: np.ndarray | None = None,
) -> list[str]:
    """One text per post; ``reply_parent_author`` >= 0 marks replies (rendered as @user{parent})."""
    k = len(topic)
    pick = rng.integers(0, 1 << 30, (k, 3))
    reply_parent_author = np.full(k, -1) if reply_parent_author is None else reply_parent_author
    subj = [SUBJECTS.get(name, [name]) for name in topics]
    tags = ["#" + name for name in topics]
    second = rng.integers(0, len(topics), k)
    out: list[str] = []
    for i, (t, q, d, lean, par) in enumerate(
        zip(
            topic.tolist(),
            quality.tolist(),
            divisiveness.tolist(),
            np.sign(author_leaning).astype(int).tolist(),
            reply_parent_author.tolist(),
        )
    ):
        a, b, c = pick[i]
        s_list = subj[t]
        s = s_list[a % len(s_list)]
        if par >= 0:
            body = REPLIES[b % len(REPLIES)].format(a=f"user{par}")
            if d > 0.6:
                g = OUT_GROUP[lean]
                body += " " + DIVISIVE[c % len(DIVISIVE)].format(s=s, g=g, G=g[0].upper() + g[1:])
            out.append(body)
            continue
        if d > 0.55:
            g = OUT_GROUP[lean]
            text = DIVISIVE[b % len(DIVISIVE)].format(s=s, g=g, G=g[0].upper() + g[1:])
            text = text[0].upper() + text[1:]
        elif q > 0.6:
            text = THOUGHTFUL[b % len(THOUGHTFUL)].format(s=s)
        else:
            text = CASUAL[b % len(CASUAL)].format(s=s)
        text += " " + tags[t]
        if c % 3 == 0 and second[i] != t:
            text += " " + tags[second[i]]
        out.append(text)
    return out
