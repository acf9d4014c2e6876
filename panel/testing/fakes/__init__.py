"""Fakes for offline tests: one loopback HTTP server (http.py) under the OpenAI and Anthropic
fakes (openai.py, anthropic.py), a scripted provider (scripted.py), and judges whose pairwise
behaviour is known (judges.py)."""
