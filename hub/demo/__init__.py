"""`omnihub demo`: the hub shown end to end on a fresh machine (bundled config, SQLite, no broker).

Start at command.py. It builds the real app (hub/app.py) and drives it as a customer and an agent
would (story.py), then reads back and reports what happened (readback.py, report.py). Providers
are played by local stand-ins it runs beside the hub (twilio_stand_in.py): nothing leaves the machine.

May import: app and everything below it. Nothing imports it but the CLI.
"""
