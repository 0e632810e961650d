//! The web console in headless Chromium against a real service on the machine's engine: the
//! token asked for, a judge watched to its verdict and a slower run seen running then ended
//! without a reload, the judge's graph and logs, a node drained by keyboard, a broken script
//! refused at its line then fixed in the editor, every page at desktop and phone width,
//! 10,000 stored instances paged quickly, and no error in the browser's console. Each page is
//! saved as a screenshot in `target/console-screenshots/`.

#[path = "common/browser.rs"]
mod browser;
#[path = "common/service.rs"]
mod service;

use browser::{Browser, LogEntry};
use functional_tests::Engine;
use reqwest::Method;
use serde_json::json;
use service::{Api, Service, config};

const TOKEN: &str = "console-test-token";

const SUBMISSION: &[u8] = b"read a b\necho $((a + b))\n";

/// Three sums, one answered wrong.
const TESTS: [(&str, &str); 3] = [("1 2\n", "3"), ("10 20\n", "30"), ("7 8\n", "16")];

async fn start_judge(api: &Api) -> String {
    let mut blobs = vec![api.blob("Main.sh", SUBMISSION).await];
    for (i, (input, answer)) in TESTS.iter().enumerate() {
        blobs.push(api.blob(&format!("input_{}.txt", i + 1), input.as_bytes()).await);
        blobs.push(api.blob(&format!("answer_{}.txt", i + 1), answer.as_bytes()).await);
    }
    api.start("judge", blobs, json!({})).await
}

/// Console entries that are errors, except the failed requests the test causes on purpose:
/// the first call without a token (401) and the broken script's refusal (400).
fn unexpected_errors(log: &[LogEntry]) -> Vec<&LogEntry> {
    log.iter()
        .filter(|e| e.level == "SEVERE" || e.level == "ERROR")
        .filter(|e| {
            let on_purpose = e.message.contains("status of 401")
                || e.message.contains(
                    "/api/v1/StateMachine - Failed to load resource: the server responded with a status of 400",
                );
            !on_purpose
        })
        .collect()
}

/// Whether the page is no wider than the window (tables scroll inside their own box).
async fn fits_width(browser: &Browser) -> bool {
    browser.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1;").await == json!(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_follows_a_judge_drains_a_node_and_fixes_a_script() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    if !engine.has_image_or_skip("wharf/actor:latest", "bash images/build.sh").await {
        return;
    }
    let Some(browser) = Browser::start_or_skip().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let mut config =
        config(dir.path(), &format!("wharf-console-{}", std::process::id()), &[("local", &engine.address)]);
    config.auth.tokens = vec![TOKEN.into()];
    let service = Service::start(config).await;
    let api = &service.api;
    let ui = format!("{}/ui/", api.base);
    let mut log = Vec::new();

    // The page is served without a token and asks for one before it shows any data.
    browser.goto(&format!("{ui}#/summary")).await;
    browser.find("#token-dialog[open]").await;
    let input = browser.find("#token-input").await;
    browser.wait_text("#token-reason", 10, |t| t.contains("token")).await;
    browser.screenshot("00-token").await;
    input.send_keys(TOKEN).await.expect("type the token");
    browser.click("#token-form button[type=submit]").await;
    browser.wait_text("#nodes-up", 20, |t| t == "1 of 1").await;
    browser.wait_text("#updated", 10, |t| t.starts_with("updated ")).await;
    browser.screenshot("01-summary").await;

    // A judge, watched on the instances page from before its verdict to after, no reload.
    let id = start_judge(api).await;
    browser.goto(&format!("{ui}#/instances")).await;
    let row = format!("tr[data-instance='{id}'] .badge");
    let first = browser.wait_text(&row, 20, |t| !t.is_empty()).await;
    browser.screenshot("02-instances").await;
    browser.wait_text(&row, 120, |t| t == "Succeeded").await;
    assert!(
        ["Queued", "Running", "Succeeded"].contains(&first.as_str()),
        "the row showed the instance's state: {first}"
    );
    let stored = api.instance(&id).await;
    assert_eq!(stored["result"]["verdict"], "Wrong Answer", "{stored}");

    // A slower instance, open on its own page: seen running, then ended, with no reload.
    api.ok(Method::PUT, "/api/v1/Actor", Some(json!({"name": "nap", "body": "sleep 6; echo rested"}))).await;
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(json!({"name": "naps", "body": "run_actor(\"nap\", []); 1"})))
        .await;
    let slow = api.start("naps", vec![], json!({})).await;
    browser.goto(&format!("{ui}#/instance/{slow}")).await;
    browser.wait_text("#instance-summary .badge", 20, |t| t == "Running").await;
    browser.screenshot("03-instance-running").await;
    browser.wait_text("#instance-summary .badge", 30, |t| t == "Succeeded").await;
    browser.wait_text("#logs", 10, |t| t.contains("nap on local")).await;

    // The instance: its state, verdict, actors, graph (drawn in the page) and logs.
    browser.goto(&format!("{ui}#/instance/{id}")).await;
    browser.wait_text("#instance-summary .badge", 20, |t| t == "Succeeded").await;
    browser.wait_text("#result", 10, |t| t.contains("Wrong Answer")).await;
    let actors = stored["startedActors"].as_array().map(Vec::len).unwrap_or_default();
    assert_eq!(actors, 1 + TESTS.len(), "{stored}");
    browser.wait_text("#graph", 20, |t| t.contains("judge-compile")).await;
    assert_eq!(browser.count("#graph svg g.node.actor").await, actors, "a box per actor");
    assert_eq!(browser.count("#graph svg g.node.actor.state-succeeded").await, actors, "all drawn as succeeded");
    assert!(browser.count("#graph svg path.edge").await >= 2 * TESTS.len(), "blobs flow into and out of the runs");
    assert!(browser.count("#graph svg g.node.blob").await > TESTS.len(), "the blobs are drawn");
    browser.wait_text("#logs", 20, |t| t.contains("judge-run")).await;
    assert_eq!(browser.count("#logs details.log").await, actors, "one log per actor run");
    assert!(browser.count("button[data-blob]").await > actors, "inputs and outputs can be downloaded");
    browser.click("dd[data-fact='Initial blobs'] button").await;
    assert_eq!(browser.downloaded("Main.sh").await, SUBMISSION, "a blob downloads with the token, as itself");
    browser.screenshot("04-instance").await;
    browser.screenshot_of("#instance-actors", "04-instance-actors").await;
    browser.screenshot_of("#graph", "05-instance-graph").await;
    browser.screenshot_of("#logs", "06-instance-logs").await;
    log.extend(browser.log().await);

    // Re-run from the Run stage: the compile is kept, the tests run again.
    let key = browser.wait_text("dd[data-fact='Execution key']", 5, |t| t.len() > 8).await;
    browser.find("#rerun-form select").await.select_by_value("Run").await.expect("choose the stage");
    browser.click("#rerun-form button[type=submit]").await;
    browser.wait_text(".messages", 10, |t| t.contains("Re-running from Run")).await;
    browser.wait_text("dd[data-fact='Execution key']", 30, |t| t.len() > 8 && t != key).await;
    browser.wait_text("#instance-summary .badge", 60, |t| t == "Succeeded").await;
    let rerun = api.instance(&id).await;
    let compiles = rerun["startedActors"].as_array().expect("actors").iter().filter(|a| a["name"] == "judge-compile");
    assert_eq!(compiles.count(), 1, "the compile is not run again: {rerun}");

    // Cancel a running instance from its page.
    let doomed = api.start("naps", vec![], json!({})).await;
    browser.goto(&format!("{ui}#/instance/{doomed}")).await;
    browser.wait_text("#instance-summary .badge", 20, |t| t == "Running").await;
    browser.click("button[data-key='cancel']").await;
    browser.wait_text("#instance-summary .badge", 30, |t| t == "Cancelled").await;
    assert_eq!(api.instance(&doomed).await["state"], "Cancelled");

    // Drain the node from the nodes page; the API agrees; undrain it again.
    browser.goto(&format!("{ui}#/nodes")).await;
    browser.wait_text("tr[data-node='local'] .badge", 20, |t| t == "healthy").await;
    browser.wait_text("tr[data-node='local'] td:nth-child(4)", 10, |t| t.contains("(present)")).await;
    // By keyboard: Tab from the header reaches the button, its focus is drawn, Enter presses it.
    browser.eval("document.querySelector(\"nav a[href='#/actors']\").focus();").await;
    let tab = char::from(fantoccini::key::Key::Tab).to_string();
    let mut focused = browser.client.active_element().await.expect("focused element");
    for _ in 0..40 {
        if focused.attr("class").await.ok().flatten().is_some_and(|c| c.contains("drain")) {
            break;
        }
        focused.send_keys(&tab).await.expect("press Tab");
        focused = browser.client.active_element().await.expect("focused element");
    }
    assert_eq!(focused.text().await.expect("text"), "Drain local", "Tab reaches the drain button");
    assert_eq!(focused.css_value("outline-style").await.expect("outline"), "solid", "focus is visible");
    focused.send_keys(&char::from(fantoccini::key::Key::Enter).to_string()).await.expect("press Enter");
    browser.wait_text("tr[data-node='local'] td.drained", 10, |t| t == "drained").await;
    let nodes = api.ok(Method::GET, "/api/v1/DockerNode/All", None).await;
    assert_eq!(nodes[0]["nodeInfo"]["drained"], true, "{nodes}");
    browser.screenshot("07-nodes-drained").await;
    browser.click("tr[data-node='local'] button.drain").await;
    browser.wait_text("tr[data-node='local'] td.drained", 10, |t| t == "no").await;

    // Add a node from the form, then remove it (the button asks twice).
    browser.find("form.inline-form input[name=name]").await.send_keys("spare").await.expect("name");
    browser.find("form.inline-form input[name=address]").await.send_keys(&engine.address).await.expect("address");
    browser.click("form.inline-form button[type=submit]").await;
    browser.wait_text("tr[data-node='spare'] .badge", 20, |t| t == "healthy").await;
    browser.click("button[data-key='remove-spare']").await;
    browser.wait_text("button[data-key='remove-spare']", 5, |t| t == "Really remove spare").await;
    browser.click("button[data-key='remove-spare']").await;
    browser.wait_text("#node-list", 10, |t| !t.contains("spare")).await;
    let nodes = api.ok(Method::GET, "/api/v1/DockerNode/All", None).await;
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes}");

    browser.goto(&format!("{ui}#/queue")).await;
    browser.wait_text("#q-running", 20, |t| t.contains("of 4 slots")).await;
    browser.screenshot("08-queue").await;

    // A state machine with a syntax error on line 3 is refused; the editor marks line 3 and
    // shows the service's message there; fixed, it is stored.
    browser.goto(&format!("{ui}#/machine")).await;
    browser.find("#definition-form input[name=name]").await.send_keys("sum").await.expect("name");
    let script = browser.find("textarea.code").await;
    script.send_keys("let a = 1;\nlet b = 2;\nlet c = a + ;\nc").await.expect("type the script");
    browser.click("#save").await;
    let bubble = browser.wait_text(".error-bubble", 10, |t| t.contains("line 3")).await;
    assert!(bubble.starts_with("line 3, column 13: ") && bubble.contains("Unexpected"), "{bubble}");
    browser.wait_text("#editor-messages", 5, |t| t.contains("script error at line 3")).await;
    assert_eq!(browser.count(".gutter span.problem[data-line='3']").await, 1, "line 3 is marked");
    let (status, _) = api.call(Method::GET, "/api/v1/StateMachine/sum", None).await;
    assert_eq!(status, 404, "nothing stored while the script is broken");
    browser.screenshot("09-editor-error").await;
    script.clear().await.expect("clear");
    script.send_keys("let a = 1;\nlet b = 2;\nlet c = a + b;\nc").await.expect("type the fix");
    browser.click("#save").await;
    browser.wait_text("#editor-messages", 10, |t| t.contains("Saved state machine sum")).await;
    assert_eq!(browser.count(".error-bubble:not([hidden])").await, 0, "the mark is gone");
    let machine = api.ok(Method::GET, "/api/v1/StateMachine/sum", None).await;
    assert_eq!(machine["body"], "let a = 1;\nlet b = 2;\nlet c = a + b;\nc", "{machine}");
    browser.screenshot("10-editor-saved").await;
    browser.goto(&format!("{ui}#/actors")).await;
    browser.wait_text("main table", 10, |t| t.contains("judge-run")).await;
    browser.screenshot("11-actors").await;
    browser.goto(&format!("{ui}#/actor/nap")).await;
    let program = browser.find("textarea.code").await;
    program.clear().await.expect("clear");
    program.send_keys("sleep 1; echo rested").await.expect("type the program");
    browser.click("#save").await;
    browser.wait_text("#editor-messages", 10, |t| t.contains("Saved actor nap")).await;
    assert_eq!(api.ok(Method::GET, "/api/v1/Actor/nap", None).await["body"], "sleep 1; echo rested");

    browser.goto(&format!("{ui}#/summary")).await;
    // Two succeeded (the judge and the slow run), one cancelled.
    browser.wait_text("#success-rate", 20, |t| t == "66.7%").await;
    assert_eq!(browser.wait_text(".bar-value[data-state='Succeeded']", 5, |_| true).await, "2");
    assert_eq!(browser.wait_text(".bar-value[data-state='Cancelled']", 5, |_| true).await, "1");
    // The day's chart holds the same three, each column a link to its instances.
    let columns = "figure.timeline a[data-total]";
    assert_eq!(browser.count(columns).await, 24, "one column per hour of the last day");
    let charted = browser
        .eval(&format!(
            "return [...document.querySelectorAll('{columns}')].reduce((n, a) => n + Number(a.dataset.total), 0)"
        ))
        .await;
    assert_eq!(charted, json!(3), "the chart counts every instance created in the last day");
    let label = browser
        .eval(&format!("return document.querySelector('{columns}:not([data-total=\"0\"])').getAttribute('aria-label')"))
        .await;
    assert!(label.as_str().is_some_and(|l| l.contains("succeeded")), "a column says what it holds: {label}");
    browser.screenshot("12-summary-after").await;
    assert!(fits_width(&browser).await, "the summary fits 1280 px");
    browser.eval(&format!("[...document.querySelectorAll('{columns}:not([data-total=\"0\"])')].pop().click()")).await;
    browser.wait_text("#instance-list caption", 20, |t| t.contains(" in all") && !t.contains(": 0 in all")).await;

    // A phone-sized window: the pages reflow instead of overflowing.
    browser.set_size(390, 844).await;
    for (page, ready, name) in [
        ("#/summary", "#success-rate", "13-phone-summary"),
        ("#/instances", "#instance-list table", "14-phone-instances"),
        ("#/nodes", "#node-list table", "15-phone-nodes"),
    ] {
        browser.goto(&format!("{ui}{page}")).await;
        browser.find(ready).await;
        browser.wait_text("#updated", 10, |t| t.starts_with("updated ")).await;
        browser.screenshot(name).await;
        assert!(fits_width(&browser).await, "{page} fits a phone's width");
    }
    browser.goto(&format!("{ui}#/instance/{id}")).await;
    browser.wait_text("#graph", 20, |t| t.contains("judge-compile")).await;
    browser.screenshot("16-phone-instance").await;
    assert!(fits_width(&browser).await, "the instance fits a phone's width");

    log.extend(browser.log().await);
    assert!(
        log.iter().any(|e| e.message.contains("status of 400")),
        "the browser's log is read: the refused script is in it: {log:#?}"
    );
    let errors = unexpected_errors(&log);
    assert!(errors.is_empty(), "the browser logged errors: {errors:#?}");
    browser.close().await;
    service.stop().await;
}

/// How many instances the listing test stores: the size the console is meant to stay quick at.
const MANY: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instances_page_stays_quick_with_ten_thousand_instances() {
    let Some(browser) = Browser::start_or_skip().await else { return };
    let dir = tempfile::tempdir().expect("dir");
    let config = config(dir.path(), &format!("wharf-console-many-{}", std::process::id()), &[]);
    // Stored before the service starts, and cancelled, so that none of them runs.
    let store = wharf::store::Store::open(&config.database.url, 1).await.expect("store");
    let new = wharf::store::NewInstance {
        name: "judge".into(),
        initial_blobs: vec![],
        limitation: None,
        parameters: Default::default(),
        priority: 0,
    };
    for _ in 0..MANY {
        let id = store.create_instance(&new, "1", "console-test").await.expect("instance");
        store.cancel_instance(id, None).await.expect("cancel");
    }
    drop(store);
    let service = Service::start(config).await;
    let ui = format!("{}/ui/", service.api.base);

    let started = std::time::Instant::now();
    browser.goto(&format!("{ui}#/instances")).await;
    let caption = browser.wait_text("#instance-list caption", 20, |t| t.contains("in all")).await;
    let shown = started.elapsed();
    assert!(caption.contains(&format!("{MANY} in all")), "{caption}");
    assert_eq!(browser.count("#instance-list tbody tr").await, 20, "one page of 20");
    browser.wait_text(".pager .page-of", 10, |t| t == "page 1 of 500").await;
    browser.click(".pager a[rel=next]").await;
    browser.wait_text(".pager .page-of", 10, |t| t == "page 2 of 500").await;
    browser.screenshot("17-many-instances").await;

    // Filters go through the API: a state machine with none of them, then the right one.
    let name = browser.find("form.filters input[name=name]").await;
    name.send_keys("naps").await.expect("type a name");
    browser.find("form.filters select[name=state]").await.select_by_value("Cancelled").await.expect("state");
    browser.click("form.filters button[type=submit]").await;
    browser.wait_text("#instance-list caption", 10, |t| t.contains(": 0 in all")).await;
    browser.wait_text("#instance-list td.empty", 5, |t| t == "nothing here").await;
    let name = browser.find("form.filters input[name=name]").await;
    name.clear().await.expect("clear");
    name.send_keys("judge").await.expect("type a name");
    browser.click("form.filters button[type=submit]").await;
    browser.wait_text("#instance-list caption", 10, |t| t.contains(&format!(": {MANY} in all"))).await;
    let hash = browser.eval("return location.hash;").await;
    assert_eq!(hash, "#/instances?name=judge&state=Cancelled&pageSize=20", "the filter is in the address");
    assert!(shown < std::time::Duration::from_secs(3), "the first page took {shown:?}");

    // Every listing the page asked for was one page, never the whole table.
    let asked = browser
        .eval("return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('StateMachineInstance/All'));")
        .await;
    let asked: Vec<&str> = asked.as_array().expect("urls").iter().filter_map(|u| u.as_str()).collect();
    assert!(!asked.is_empty());
    for url in &asked {
        assert!(url.contains("pageSize=") && url.contains("page="), "a listing without paging: {url}");
    }
    let errors: Vec<LogEntry> = browser.log().await.into_iter().filter(|e| e.level == "SEVERE").collect();
    assert!(errors.is_empty(), "the browser logged errors: {errors:#?}");
    browser.close().await;
    service.stop().await;
}
