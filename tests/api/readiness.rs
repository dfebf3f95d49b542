//! `/readyz`: ready while the store answers and the worker runs, with what
//! each tenant's cloud last answered; an upstream outage shows there and
//! does not make the gateway unready.

use openstack_sim::{Fault, FaultKind, Op};

use crate::helpers::{TestApp, snapshot};

#[tokio::test]
async fn readiness_shows_each_tenants_last_answers_and_stays_ready_through_a_cinder_outage() {
    // Arrange: tenant-a's token is had, then Cinder fails its snapshot read.
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/jobs").await;
    app.sim.inject(Fault {
        op: Op::SnapshotShow,
        kind: FaultKind::Status(503),
        times: 1,
    });
    app.get("tenant-a", &format!("/snapshots/{}", snapshot('a', 1)))
        .await
        .assert_problem(503, "upstream-unavailable");

    // Act
    let ready = app.get("tenant-a", "/readyz").await;

    // Assert
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready");
    let a = &ready.body["tenants"]["tenant-a"];
    assert_eq!(a["cloud"], "tenant-a", "{}", ready.text);
    assert!(a["last_keystone_success"].is_string(), "{}", ready.text);
    assert_eq!(a["last_error"]["service"], "cinder", "{}", ready.text);
    assert!(
        a["last_error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("503") && !d.contains("127.0.0.1")),
        "{}",
        ready.text
    );
    // A tenant no call was made for has nothing yet.
    let b = &ready.body["tenants"]["tenant-b"];
    assert!(b["last_keystone_success"].is_null(), "{}", ready.text);
    assert!(b["last_error"].is_null(), "{}", ready.text);
}
