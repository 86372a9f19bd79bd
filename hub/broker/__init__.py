"""RabbitMQ and the events it carries: the outbox's event rows and CloudEvents envelopes
(events.py), the outbox queries (outbox_store.py) and relay (relay.py), the AMQP publisher with
confirms (amqp.py; its connection in amqp_session.py, its batch writes in amqp_writes.py, the
delivery-tag arithmetic in confirms.py, heartbeats and a silent broker in amqp_liveness.py), the
consumer side (consumer.py), exchanges and queues (topology.py), dead letters and `omnihub dlq`
(dead_letters.py, dlq.py, cli.py), and the AsyncAPI document (asyncapi.py, `omnihub asyncapi`).

Start at relay.py for events out, consumer.py for commands in.

May import: storage and the utilities. Must not import: any capability above it; they call it.
"""
