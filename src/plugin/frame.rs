//! The daemon's end of the worker wire: the frame format itself is `vigil-wire` (one I/O-free
//! crate that `vigil-worker` compiles too); this module adds the async read of one frame from
//! the worker's stdout.

use tokio::io::{AsyncRead, AsyncReadExt};

pub use vigil_wire::{
    decode, header, parse_header, run_payload, write_frame, ExitKind, Frame, FrameError,
    PluginInfo, Tag, WorkerHello, HEADER_LEN, MAX_PAYLOAD,
};

/// Reads one frame. `Ok(None)` is a clean end of stream (at a frame boundary). Not
/// cancel-safe: dropping the future mid-frame loses the stream position.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    let got = read_full(r, &mut head).await?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            missing: HEADER_LEN - got,
        });
    }
    let (tag, len) = parse_header(&head)?;
    let mut payload = vec![0u8; len];
    let got = read_full(r, &mut payload).await?;
    if got < len {
        return Err(FrameError::Truncated { missing: len - got });
    }
    decode(tag, payload).map(Some)
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(mut bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut out = Vec::new();
        while let Some(f) = read_frame(&mut bytes).await? {
            out.push(f);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn the_async_reader_agrees_with_the_wire() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Tag::Note, b"a").unwrap();
        write_frame(&mut buf, Tag::Item, br#"{"key":"k"}"#).unwrap();
        assert_eq!(
            read_all(&buf).await.unwrap(),
            vigil_wire::decode_all(&buf).unwrap()
        );
        for cut in 1..buf.len() {
            if cut == 6 {
                continue; // a frame boundary
            }
            assert!(read_all(&buf[..cut]).await.is_err(), "cut at {cut}");
        }
        let mut hostile = ((MAX_PAYLOAD + 1) as u32).to_le_bytes().to_vec();
        hostile.push(Tag::Item as u8);
        assert!(matches!(
            read_all(&hostile).await,
            Err(FrameError::TooLarge { .. })
        ));
    }
}
