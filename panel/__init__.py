"""panel: tool cards go through personas to reviews, reviews to a panel, panels to pages."""

__version__ = "0.1.0"
