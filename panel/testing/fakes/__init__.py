"""Fakes for offline tests: one loopback HTTP server (http.py) under the OpenAI and Anthropic
fakes (openai.py, anthropic.py), and a scripted provider (scripted.py)."""
