"""The runner: a long-running Cloud Run service per shard that holds the WhatsApp sockets of its
shard's sessions while (and only while) it holds the shard lease."""
