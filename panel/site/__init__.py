"""The static site: an index of the newest comparisons and the categories, listings of every
comparison (all, and per category) and every tool, a page per tool, the comparison pages, a
ranking page per category whose tools were judged in pairs, Atom feeds, a search index and a
sitemap, all from the store with relative links (open from disk or any static host; `panel
serve` serves them with the vote API). Rebuilt where the store changed (panel.site.build);
built from the store as panel.site.catalogue reads it.
"""

from __future__ import annotations

from panel.site.build import SITE_TITLE, Changed, build_site, has_site, refresh_site, update_site

__all__ = ["SITE_TITLE", "Changed", "build_site", "has_site", "refresh_site", "update_site"]
