//! Sign-up and sign-in, as `plugin/src/network/api/AuthClient.cpp` sends and reads them.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sidechain_system_tests::{System, send};

use crate::shape::{Json, expect_fields};

const AUTH_CLIENT: &str = "plugin/src/network/api/AuthClient.cpp";

#[tokio::test]
async fn register_then_login_with_the_username_in_the_email_field() {
    let system = System::start(&[]).await;
    let register = send(
        system
            .api
            .request(Method::POST, "/api/v1/auth/register")
            .json(&json!({
                "email": "dj@example.com",
                "username": "dj_shadow",
                "password": "correct horse battery",
                "display_name": "DJ"
            })),
    )
    .await;
    assert_eq!(register.status, StatusCode::CREATED, "{:?}", register.body);
    expect_fields(
        &register.body,
        AUTH_CLIENT,
        &[
            ("auth.token", Json::Str),
            ("auth.user.id", Json::Str),
            ("auth.user.username", Json::Str),
        ],
    );

    // AuthClient::login sends whatever the user typed in the `email` field.
    let login = send(
        system
            .api
            .request(Method::POST, "/api/v1/auth/login")
            .json(&json!({"email": "dj_shadow", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    // `requires_2fa` and `auth.user.email_verified` are read with defaults (false, true): we
    // have neither 2FA nor email verification, so we send neither rather than claim them.
    expect_fields(
        &login.body,
        AUTH_CLIENT,
        &[
            ("auth.token", Json::Str),
            ("auth.user.id", Json::Str),
            ("auth.user.username", Json::Str),
        ],
    );
    system.stop().await;
}
