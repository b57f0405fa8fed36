//! The one check of an email address, used by the config (users, group owners,
//! `email.from`), the API (assignees, test mails) and the outbox: lettre's own parser, so
//! that whatever vigil accepts is an address the mail transport can send to.

/// A plain address (`alice@example.com`), or why it is not one.
pub fn check_address(s: &str) -> Result<lettre::Address, String> {
    s.parse::<lettre::Address>().map_err(|e| {
        format!("{s:?} is not an email address ({e}); write it like alice@example.com")
    })
}

/// A mailbox, with or without a display name (`vigil <vigil@example.com>`), or why not.
pub fn check_mailbox(s: &str) -> Result<lettre::message::Mailbox, String> {
    s.parse::<lettre::message::Mailbox>()
        .map_err(|e| format!("{s:?} is not a valid address ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_mailboxes() {
        assert!(check_address("alice@example.com").is_ok());
        assert!(check_address("root@localhost").is_ok());
        for bad in [
            "",
            "alice",
            "a b@example.com",
            "alice@",
            "@example.com",
            "a@b\nBcc: x@y",
        ] {
            let e = check_address(bad).unwrap_err();
            assert!(e.contains("is not an email address"), "{bad:?}: {e}");
        }
        assert!(check_mailbox("vigil <vigil@example.com>").is_ok());
        assert!(check_mailbox("not an address").is_err());
    }
}
