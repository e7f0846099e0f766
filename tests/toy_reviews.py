"""A handful of movie-review snippets the tiny-model analysis tests share (template, label words, data)."""

TEMPLATE = "Review: {text} Sentiment:"
WORDS = [" Negative", " Positive"]
DEMOS = [
    {"text": "a gripping film", "label": 1},
    {"text": "dull and overlong", "label": 0},
    {"text": "the cast is great", "label": 1},
    {"text": "a tedious mess", "label": 0},
]
QUERIES = [
    {"text": "beautifully acted", "label": 1},
    {"text": "badly written", "label": 0},
    {"text": "clever plot", "label": 1},
    {"text": "nothing to say", "label": 0},
    {"text": "I loved every minute", "label": 1},
]
