"""The eval: how far the panel as configured can be trusted, measured on a set of cards (probes,
statistics, the panel.eval/1 document) and rendered as a report; `panel eval` runs it."""
