"""The completion events' cloud resources (terraform/events.tf, iam.tf): the
topic the functions publish to, the BigQuery dataset, table (its schema
derived from the event's JSON Schema) and subscription, the optional webhook
push subscription with its OIDC identity, the dead-letter topic and the IAM
that makes each work. Parsed with python-hcl2, as the other deploy tests."""

from __future__ import annotations

import json

from scripts import bigquery_schema
from shared import result_events as events
from tests.deploy.conftest import REPO, TERRAFORM, Terraform, block, dependency_graph, depends_on

AGENT = "${local.pubsub_agent}"
EVENTS_DEAD_LETTER = '${google_pubsub_topic.dead_letters["events"].id}'
AGENT_EMAIL = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"


def test_the_functions_publish_to_the_events_topic(tf: Terraform):
    topic = tf.resource("google_pubsub_topic", "events")
    assert topic["name"] == "${var.name_prefix}-events"
    assert tf.locals["function_environment"]["EVENTS_TOPIC"] == "${google_pubsub_topic.events.id}"
    assert tf.locals["function_extra_environment"]["sweep"]["EVENTS_GRACE_SECONDS"] == "${tostring(var.events_grace_seconds)}"
    publishers = tf.resource("google_pubsub_topic_iam_member", "events_publishers")
    assert set(tf.locals["event_publishers"]) == {"classify", "sweep", "review"}
    assert publishers["role"] == "roles/pubsub.publisher" and publishers["topic"] == "${google_pubsub_topic.events.name}"
    assert "bigquery.googleapis.com" in tf.locals["services"]


def test_the_table_schema_is_the_one_derived_from_the_event_schema(tf: Terraform):
    table = tf.resource("google_bigquery_table", "events")
    assert table["schema"] == '${file("${path.module}/bigquery/events-table.schema.json")}'
    committed = json.loads((TERRAFORM / "bigquery" / "events-table.schema.json").read_text())
    derived = bigquery_schema.table_schema(json.loads((REPO / events.SCHEMA_FILE).read_text()))
    assert committed == derived, "run python -m scripts.bigquery_schema"
    columns = {column["name"]: column for column in committed}
    partitioning = block(table, "time_partitioning")
    assert partitioning == {"type": "DAY", "field": "publish_time"} and columns["publish_time"]["type"] == "TIMESTAMP"
    assert table["clustering"] == ["type"] and "type" in columns
    assert table["dataset_id"] == "${google_bigquery_dataset.events.dataset_id}"
    assert tf.resource("google_bigquery_dataset", "events")["location"] == "${var.events_bigquery_location}"


def test_the_bigquery_subscription_writes_typed_columns_and_metadata(tf: Terraform):
    subscription = tf.resource("google_pubsub_subscription", "events_bigquery")
    assert subscription["topic"] == "${google_pubsub_topic.events.id}"
    config = block(subscription, "bigquery_config")
    assert config["table"] == (
        "${google_bigquery_table.events.project}.${google_bigquery_table.events.dataset_id}.${google_bigquery_table.events.table_id}"
    )
    assert config["use_table_schema"] is True and config["write_metadata"] is True and config.get("use_topic_schema") is None
    dead = block(subscription, "dead_letter_policy")
    assert dead["dead_letter_topic"] == EVENTS_DEAD_LETTER
    writer = tf.resource("google_bigquery_table_iam_member", "events_writer")
    assert writer["role"] == "roles/bigquery.dataEditor" and writer["member"] == AGENT
    assert writer["table_id"] == "${google_bigquery_table.events.table_id}"
    assert tf.locals["pubsub_agent"] == AGENT_EMAIL
    graph = dependency_graph(tf)
    assert depends_on(graph, "google_pubsub_subscription.events_bigquery", "google_bigquery_table_iam_member.events_writer")


def test_the_webhook_is_optional_authenticated_retried_and_dead_lettered(tf: Terraform):
    webhook = tf.resource("google_pubsub_subscription", "events_webhook")
    assert webhook["count"] == '${var.events_webhook_url == "" ? 0 : 1}'
    push = block(webhook, "push_config")
    assert push["push_endpoint"] == "${var.events_webhook_url}"
    oidc = block(push, "oidc_token")
    assert oidc["service_account_email"] == '${google_service_account.accounts["webhook"].email}'
    assert oidc["audience"] == '${var.events_webhook_audience == "" ? var.events_webhook_url : var.events_webhook_audience}'
    assert block(push, "no_wrapper") == {"write_metadata": False}  # the body is the CloudEvent itself
    assert block(webhook, "dead_letter_policy") == {
        "dead_letter_topic": EVENTS_DEAD_LETTER,
        "max_delivery_attempts": "${var.events_max_delivery_attempts}",
    }
    retry = block(webhook, "retry_policy")
    assert retry["minimum_backoff"] == "10s" and retry["maximum_backoff"] == "600s"
    creator = tf.resource("google_service_account_iam_member", "webhook_token_creator")
    assert creator["service_account_id"] == '${google_service_account.accounts["webhook"].name}'
    assert creator["role"] == "roles/iam.serviceAccountTokenCreator" and creator["member"] == AGENT
    url = tf.variables["events_webhook_url"]
    assert url["default"] == "" and "https://" in block(url, "validation")["condition"]


def test_the_pubsub_agent_may_dead_letter_from_each_events_subscription(tf: Terraform):
    publisher = tf.instances("google_pubsub_topic_iam_member", "dead_letter_publishers")["events"]
    assert publisher["topic"] == '${google_pubsub_topic.dead_letters["events"].name}' and publisher["member"] == AGENT
    assert publisher["role"] == "roles/pubsub.publisher"
    subscriber = tf.resource("google_pubsub_subscription_iam_member", "events_dead_letter_subscriber")
    assert subscriber["for_each"] == "${local.events_subscriptions}" and subscriber["role"] == "roles/pubsub.subscriber"
    assert subscriber["member"] == AGENT
    listed = json.dumps(tf.locals["events_subscriptions"])
    dead_lettering = [name for name, body in tf.of_type("google_pubsub_subscription").items() if "dead_letter_policy" in body]
    assert sorted(dead_lettering) == ["events_bigquery", "events_webhook"]
    graph = dependency_graph(tf)
    for name in dead_lettering:
        assert f"google_pubsub_subscription.{name}" in listed, f"{name} is not in local.events_subscriptions"
        assert depends_on(graph, f"google_pubsub_subscription.{name}", "google_pubsub_topic_iam_member.dead_letter_publishers")
    kept = tf.instances("google_pubsub_subscription", "dead_letters")["events"]
    assert kept["name"] == "${var.name_prefix}-events-dead-letter"
    assert kept["topic"] == EVENTS_DEAD_LETTER


def test_outputs_name_the_topic_and_the_table(tf: Terraform):
    assert tf.outputs["events_topic"]["value"] == "${google_pubsub_topic.events.id}"
    assert "google_bigquery_table.events.table_id" in tf.outputs["events_table"]["value"]
