"""Google client libraries pointed at the emulators, and the cloud resources
the stack creates on them (topic, subscription, buckets, the published model)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from localcloud.defaults import PROJECT


def storage_client(storage_url: str, project: str = PROJECT) -> Any:
    """A google-cloud-storage client for fake-gcs-server, anonymous."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": storage_url})


def publisher_client(pubsub_host: str) -> Any:
    """A Pub/Sub publisher on an insecure channel to the emulator."""
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(pubsub_host)))


def subscriber_client(pubsub_host: str) -> Any:
    """A Pub/Sub subscriber (streaming pull included) on an insecure channel to the emulator."""
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(pubsub_host)))


def create_topic_and_subscription(pubsub_host: str, project: str, topic: str, subscription: str, ack_deadline: int = 60) -> None:
    """Create both (existing ones are kept)."""
    from google.api_core.exceptions import AlreadyExists

    publisher = publisher_client(pubsub_host)
    subscriber = subscriber_client(pubsub_host)
    topic_path = publisher.topic_path(project, topic)
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(request={"name": topic_path})
    with contextlib.suppress(AlreadyExists):
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(project, subscription),
                "topic": topic_path,
                "ack_deadline_seconds": ack_deadline,
            }
        )
    subscriber.close()


def create_topics(pubsub_host: str, project: str, topics: list[str]) -> None:
    """Create each topic (existing ones are kept)."""
    from google.api_core.exceptions import AlreadyExists

    publisher = publisher_client(pubsub_host)
    for topic in topics:
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(request={"name": publisher.topic_path(project, topic)})


def create_buckets(storage_url: str, project: str, names: list[str], versioned: tuple[str, ...] = ()) -> None:
    """Create each bucket on fake-gcs-server (existing ones are kept), with
    object versioning on for those in ``versioned`` (as Terraform makes the
    processed bucket); raises GoogleAPIError."""
    from google.api_core.exceptions import Conflict

    client = storage_client(storage_url, project)
    for name in names:
        bucket = client.bucket(name)
        bucket.versioning_enabled = name in versioned
        with contextlib.suppress(Conflict):
            client.create_bucket(bucket)


def publish_model_store(storage_url: str, project: str, bucket: str, store: Path) -> str:
    """Copy ``store``/models/** into ``bucket`` under the same keys, the
    current-model pointer last; returns the current version."""
    import mimetypes

    from shared.model_layout import MODELS_PREFIX, POINTER, parse_pointer, resolve_model_dir

    resolve_model_dir(store)  # raises ModelError if the pointer or its manifest is missing
    version = parse_pointer((store / POINTER).read_bytes())
    target = storage_client(storage_url, project).bucket(bucket)
    files = sorted(p for p in (store / MODELS_PREFIX).rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    pointer = store / POINTER
    for path in [p for p in files if p != pointer] + [pointer]:
        key = path.relative_to(store).as_posix()
        content_type = "application/json" if path.suffix == ".json" else mimetypes.guess_type(path.name)[0]
        target.blob(key).upload_from_filename(str(path), content_type=content_type or "application/octet-stream")
    return version
