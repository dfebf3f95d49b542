//! The committed `openapi/openapi.json` is the one the code generates.

#[test]
fn committed_openapi_spec_matches_the_code() {
    let generated = backup_gateway::api::openapi_json().expect("spec renders");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -- openapi --output openapi/openapi.json` and commit it"
    );
}

#[tokio::test]
async fn the_served_spec_is_the_committed_one() {
    let app = crate::helpers::TestApp::spawn().await;
    let served: serde_json::Value = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let generated: serde_json::Value =
        serde_json::from_str(&backup_gateway::api::openapi_json().expect("spec")).expect("json");
    assert_eq!(served, generated);
    for path in [
        "/snapshots/{snapshot_id}/backups",
        "/jobs/{job_id}",
        "/jobs",
        "/snapshots",
        "/healthz",
        "/readyz",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path} missing");
    }
}

#[tokio::test]
async fn a_gateway_states_and_enforces_its_own_longest_wait() {
    // Arrange: a gateway whose long polls last at most 20 s, and a job
    // that is done.
    let app = crate::helpers::TestApp::spawn_with(&["--max-wait", "20s"]).await;
    let job = app
        .create_ok("tenant-a", &crate::helpers::snapshot('a', 1))
        .await;
    app.finish_backups();
    app.cycle().await;
    let id = job["id"].as_str().expect("id");

    // Act
    let spec = app.get("tenant-a", "/openapi.json").await;
    let longest = app.get("tenant-a", &format!("/jobs/{id}?wait=20")).await;
    let over = app.get("tenant-a", &format!("/jobs/{id}?wait=21")).await;

    // Assert
    let wait = spec.body["paths"]["/jobs/{job_id}"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "wait")
        .expect("wait")
        .clone();
    assert_eq!(wait["schema"]["maximum"], 20, "{wait}");
    assert_eq!(wait["schema"]["minimum"], 0, "{wait}");
    assert_eq!(longest.status, 200, "{}", longest.text);
    assert_eq!(longest.body["state"], "succeeded");
    over.assert_problem(400, "invalid-request");
    assert!(
        over.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("20")),
        "{}",
        over.text
    );
}

/// Every operation of the document lists its problems: each error status
/// is problem+json with one example per problem type its description
/// names, every answer names `X-Request-Id`, and the answers that carry
/// `WWW-Authenticate` or `Retry-After` say so.
#[test]
fn every_error_answer_is_documented_with_its_problem_types_and_headers() {
    let spec: serde_json::Value =
        serde_json::from_str(&backup_gateway::api::openapi_json().expect("spec")).expect("json");
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            operations += 1;
            let responses = operation["responses"].as_object().expect("responses");
            let tenant_operation = operation.get("security").is_some();
            let mut expected = vec!["408", "431", "500"];
            if tenant_operation {
                expected.extend(["400", "401", "403", "429", "502", "503"]);
            }
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            for (status, response) in responses {
                let at = format!("{method} {path} {status}");
                assert!(
                    response["headers"].get("X-Request-Id").is_some(),
                    "{at}: no X-Request-Id"
                );
                if status.starts_with('2') {
                    continue;
                }
                let content = &response["content"]["application/problem+json"];
                assert_eq!(
                    content["schema"]["$ref"], "#/components/schemas/Problem",
                    "{at}"
                );
                let examples = content["examples"].as_object().expect("examples");
                let description = response["description"].as_str().expect("description");
                for (slug, example) in examples {
                    assert!(description.contains(&format!("`{slug}`")), "{at}: {slug}");
                    assert_eq!(
                        example["value"]["type"],
                        format!("/problems/{slug}"),
                        "{at}"
                    );
                    assert_eq!(example["value"]["status"].to_string(), *status, "{at}");
                }
                let wants = match status.as_str() {
                    "401" | "403" => Some("WWW-Authenticate"),
                    "429" | "503" => Some("Retry-After"),
                    _ => None,
                };
                if let Some(header) = wants {
                    assert!(
                        response["headers"].get(header).is_some(),
                        "{at}: no {header}"
                    );
                }
            }
        }
    }
    assert_eq!(operations, 16);
    let create = &spec["paths"]["/snapshots/{snapshot_id}/backups"]["post"]["responses"];
    for (status, slug) in [
        ("400", "webhook-target-not-allowed"),
        ("404", "snapshot-not-found"),
        ("409", "snapshot-busy"),
        ("409", "idempotency-key-in-use"),
        ("413", "payload-too-large"),
        ("422", "idempotency-key-reused"),
    ] {
        assert!(
            create[status]["content"]["application/problem+json"]["examples"]
                .get(slug)
                .is_some(),
            "create: {status} {slug}"
        );
    }
    assert_eq!(
        create["202"]["links"]["GetJob"]["parameters"]["job_id"],
        "$response.body#/id"
    );
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary_and_reads_the_gateways_document() {
    let app = crate::helpers::TestApp::spawn().await;

    let index = app.get("tenant-a", "/").await;
    let page = app.get("tenant-a", "/docs/").await;
    let settings = app.get("tenant-a", "/docs/swagger-initializer.js").await;
    let script = app.get("tenant-a", "/docs/swagger-ui-bundle.js").await;
    let missing = app.get("tenant-a", "/docs/nothing-here.js").await;

    assert_eq!(index.body["links"]["docs"], "/docs/", "{}", index.text);
    assert_eq!(index.body["links"]["openapi"], "/openapi.json");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(page.text.contains("swagger-ui-bundle.js"), "{}", page.text);
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "{}",
        page.text
    );
    assert!(
        settings.text.contains("\"url\": \"/openapi.json\""),
        "{}",
        settings.text
    );
    assert!(
        settings.text.contains("\"validatorUrl\": \"none\""),
        "{}",
        settings.text
    );
    assert!(
        settings.text.contains("\"layout\": \"BaseLayout\""),
        "{}",
        settings.text
    );
    assert!(
        page.text.contains("<title>backup-gateway API</title>"),
        "{}",
        page.text
    );
    assert_eq!(script.status, 200);
    assert_eq!(script.header("cache-control"), Some("public, max-age=3600"));
    assert!(script.text.len() > 100_000);
    missing.assert_problem(404, "not-found");
}

/// What the gateway sends to a webhook is in the document's `webhooks`
/// (OpenAPI 3.1): the event's schema and the three signature headers.
#[test]
fn the_document_describes_what_a_webhook_receives() {
    let spec: serde_json::Value =
        serde_json::from_str(&backup_gateway::api::openapi_json().expect("spec")).expect("json");
    assert_eq!(spec["openapi"], "3.1.0");
    let delivery = &spec["webhooks"]["job-event"]["post"];
    assert_eq!(
        delivery["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/JobEventView"
    );
    let headers: Vec<(&str, bool)> = delivery["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| {
            assert_eq!(p["in"], "header");
            (p["name"].as_str().unwrap(), p["required"] == true)
        })
        .collect();
    assert_eq!(
        headers,
        [
            ("webhook-id", true),
            ("webhook-timestamp", true),
            ("webhook-signature", true)
        ]
    );
    assert!(delivery["responses"]["2XX"].is_object());
    let rotate = &spec["paths"]["/webhooks/{webhook_id}/rotate-secret"]["post"];
    assert!(
        rotate["responses"]["404"]["description"]
            .as_str()
            .unwrap()
            .contains("webhook-not-found")
    );
}
