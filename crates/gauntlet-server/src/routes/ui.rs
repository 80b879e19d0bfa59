//! `GET /ui`: a small page that lists audits with live progress, opens their reports and
//! submits audits on named datasets. It is open (it holds no data); it asks for the API key
//! when the server has one and sends it as a bearer token from the browser, never in a URL.
//! Pages are served under a Content-Security-Policy that allows only their own inline
//! script and style (by hash) and, for the UI, requests to this server; the UI's policy also
//! allows the report page's script, because a report it opens inherits it.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::routes::method_not_allowed;

const UI_HTML: &str = include_str!("../../assets/ui.html");
const UI_SCRIPT: &str = include_str!("../../assets/ui.js");
const UI_STYLE: &str = include_str!("../../assets/ui.css");

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/ui")
            .route(web::get().to(ui))
            .default_service(method_not_allowed("GET")),
    );
}

/// An HTML page with its policy and the headers every page gets.
pub fn html_response(html: String, csp: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// The UI page and its policy, built once.
fn page() -> &'static (String, String) {
    static PAGE: OnceLock<(String, String)> = OnceLock::new();
    PAGE.get_or_init(|| {
        let (report_script, report_style) = gauntlet_report::report_assets();
        let html = UI_HTML
            .replace("{{STYLE}}", UI_STYLE)
            .replace("{{SCRIPT}}", UI_SCRIPT);
        let csp = gauntlet_report::content_security_policy(
            &[UI_SCRIPT, report_script],
            &[UI_STYLE, report_style],
            true,
        ) + "; frame-ancestors 'none'";
        (html, csp)
    })
}

async fn ui() -> HttpResponse {
    let (html, csp) = page();
    html_response(html.clone(), csp)
}
