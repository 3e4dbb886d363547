"""People you may know (docs/suggestions.md): candidate generators over the follow graph, engagement, communities
and opted-in contacts (``generators``, over ``graph.PeopleGraph``), the learned P(follow | suggested) head
(``model``), policies as data (``policy``: ``policies/suggestions/*.toml``), explanations in words (``explain``) and
the service the API calls (``service``)."""
