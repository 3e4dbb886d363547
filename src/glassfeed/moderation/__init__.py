"""Moderation: what may spread, where, and why (docs/moderation.md).

notices (DSA Art. 16) and reports → classifiers run at ingest → rules as data (``policies/moderation/``) → review
queue → decisions with statements of reasons (Art. 17) → appeals (Art. 20) → community notes → transparency
report (Art. 15/24). The outcome reaches the feed as the serving state's ``visibility`` part.
"""
