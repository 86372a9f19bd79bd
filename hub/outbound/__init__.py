"""Messages out: accepting a send (messages.py: channel choice, consent, quiet hours), the
dispatcher that sends through the adapters with retries (dispatcher.py), rules' and commands'
scheduled sends (scheduled_sends.py), templates (templates.py), quiet hours (quiet_hours.py) and
campaigns (campaigns.py).

Start at messages.py, then dispatcher.py.

May import: profiles, broker, storage, the utilities. Must not import: automation, assignment,
ingest, channels, backoffice, api. The dispatcher records a sent message through the pipeline it is
handed (a Recorder), not by importing ingest.
"""
