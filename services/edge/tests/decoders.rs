//! Property tests of the request decoders: whatever bytes a client sends, decoding and
//! validation return a value or an error — they never panic — and an accepted body satisfies
//! the documented rules.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use sidechain_edge::http::auth::{LoginRequest, RegisterRequest};
use sidechain_edge::http::extract::Validate;
use sidechain_edge::http::posts::{CommentRequest, CreatePostRequest, PlayRequest};
use sidechain_edge::http::social::{
    FollowRequest, LikeRequest, ListenRequest, ReactRequest, RecommendationClickRequest,
    SocialPlayRequest, UnlikeRequest,
};
use sidechain_edge::http::users::{ProfileUpdateRequest, UsernameChangeRequest};

fn decode<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(bytes).ok()?;
    value.validate().ok().map(|()| value)
}

fn decode_all(bytes: &[u8]) {
    let _ = decode::<RegisterRequest>(bytes);
    let _ = decode::<LoginRequest>(bytes);
    let _ = decode::<PlayRequest>(bytes);
    let _ = decode::<CommentRequest>(bytes);
    let _ = decode::<LikeRequest>(bytes);
    let _ = decode::<UnlikeRequest>(bytes);
    let _ = decode::<FollowRequest>(bytes);
    let _ = decode::<UsernameChangeRequest>(bytes);
    if let Some(edit) = decode::<ProfileUpdateRequest>(bytes) {
        if let Some(name) = &edit.display_name {
            assert!((1..=64).contains(&name.trim().chars().count()));
        }
        if let Some(bio) = &edit.bio {
            assert!(bio.trim().chars().count() <= 500);
        }
        for url in [&edit.avatar_url, &edit.profile_picture_url]
            .into_iter()
            .flatten()
        {
            assert!(url.is_empty() || url.starts_with("http"), "{url}");
        }
    }
    let _ = decode::<SocialPlayRequest>(bytes);
    if let Some(react) = decode::<ReactRequest>(bytes) {
        assert!(!react.emoji.trim().is_empty() && react.emoji.trim().chars().count() <= 16);
    }
    if let Some(listen) = decode::<ListenRequest>(bytes) {
        assert!((0.0..=86_400.0).contains(&listen.duration));
    }
    if let Some(click) = decode::<RecommendationClickRequest>(bytes) {
        assert!((0..=10_000).contains(&click.position));
        assert!((1..=32).contains(&click.source.trim().chars().count()));
        assert!(
            click
                .play_duration
                .is_none_or(|d| (0.0..=86_400.0).contains(&d))
        );
    }
    if let Some(post) = decode::<CreatePostRequest>(bytes) {
        assert!(post.bpm > 0.0 && post.bpm <= 400.0);
        assert!((1..=5).contains(&post.genres.len()));
        assert!(post.duration_seconds > 0.0 && post.duration_seconds <= 3600.0);
    }
}

/// JSON-ish text: objects with the real field names and values of every type, so the
/// property explores near-valid bodies, not only noise.
fn jsonish() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "email",
        "username",
        "password",
        "display_name",
        "audio_url",
        "waveform_url",
        "bpm",
        "key",
        "genres",
        "duration_seconds",
        "daw",
        "title",
        "duration",
        "completed",
        "content",
        "parent_id",
        "activity_id",
        "emoji",
        "target_user_id",
        "bio",
        "avatar_url",
        "profile_picture_url",
        "token",
        "post_id",
        "source",
        "position",
        "play_duration",
        "filename",
    ]);
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<f64>().prop_map(|f| if f.is_finite() {
            f.to_string()
        } else {
            "1e999".to_owned()
        }),
        any::<i64>().prop_map(|i| i.to_string()),
        ".{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        Just(r#"["techno","house"]"#.to_owned()),
        Just(r#""https://cdn.example/a.wav""#.to_owned()),
        Just(r#""0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b""#.to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
    ];
    prop::collection::vec((key, value), 0..10).prop_map(|fields| {
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn near_valid_json_never_panics_and_accepted_bodies_obey_the_rules(text in jsonish()) {
        decode_all(text.as_bytes());
    }
}
