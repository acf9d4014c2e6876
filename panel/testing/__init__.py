"""Test doubles that tests and scripts share: loopback model servers, a scripted provider and a
private PostgreSQL server. Nothing in panel imports them; `panel --help` never loads them."""
