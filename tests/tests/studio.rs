//! Framecart Studio is served by the `api` role itself, from files embedded in the binary.
//! (Its pages are tested in a browser: `studio/test/`.)

use framecart_tests::TestApp;

#[tokio::test]
async fn the_studio_is_served_from_the_binary_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");

    let response = client.get(app.url("/studio")).send().await.expect("GET /studio");
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(response.headers()["location"], "/studio/");

    let response = client.get(app.url("/studio/")).send().await.expect("GET /studio/");
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert!(headers["content-type"].to_str().expect("a type").starts_with("text/html"));
    assert!(headers["content-security-policy"].to_str().expect("a policy").contains("default-src 'self'"));
    let etag = headers["etag"].clone();
    let page = response.text().await.expect("the page");
    assert!(page.contains(r#"<script type="module" src="studio.js">"#), "{page}");

    // Revalidated by its hash; scripts as JavaScript.
    let again = client.get(app.url("/studio/")).header("if-none-match", etag).send().await.expect("again");
    assert_eq!(again.status().as_u16(), 304);
    let script = client.get(app.url("/studio/studio.js")).send().await.expect("the script");
    assert_eq!(script.status().as_u16(), 200);
    assert!(script.headers()["content-type"].to_str().expect("a type").contains("javascript"));
    assert!(script.text().await.expect("text").contains("data-testid"));

    // Only the studio's own files: not its tests, not a way out of its folder.
    for path in
        ["/studio/test/studio.test.js", "/studio/package.json", "/studio/../Cargo.toml", "/studio/%2e%2e/Cargo.toml"]
    {
        let response = client.get(app.url(path)).send().await.expect("GET");
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
}
