//! How errors read to people. Client libraries often put a vague message on top
//! ("error sending request", "client error (Canceled)") and the reason underneath
//! ("Connection refused", "received fatal alert: BadCertificate"): `with_causes` shows both.

/// The error's message followed by each cause that adds something.
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Top(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_message() {
        let err = Top(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"));
        assert_eq!(super::with_causes(&err), "error sending request: Connection refused");
    }
}
