//! Writing one frame to a framed peer connection and flushing it.
//!
//! `Framed` is a `futures::Sink`, but the crate builds `futures-util` without its
//! `sink` feature (so no `SinkExt::send`); this does the same with the codec and the
//! transport directly. Reading needs nothing extra: `Framed` is a `Stream`
//! (`futures_util::StreamExt::next`).

use super::error::WireError;
use super::frame::{Frame, FrameCodec};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Encoder, Framed};

/// Encodes `frame` (after anything still pending in the write buffer), writes it and
/// flushes. A frame above the codec's limit is refused before anything is written.
/// Not cancellation safe: a connection whose send was abandoned half-way must be dropped.
pub async fn send<S>(framed: &mut Framed<S, FrameCodec>, frame: &Frame) -> Result<(), WireError>
where
    S: AsyncWrite + Unpin,
{
    let mut buf = framed.write_buffer_mut().split();
    if let Err(e) = framed.codec_mut().encode(frame, &mut buf) {
        // Put back what was pending; the codec left it intact.
        *framed.write_buffer_mut() = buf;
        return Err(e);
    }
    let io = framed.get_mut();
    io.write_all(&buf).await?;
    io.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::messages::Msg;
    use futures_util::StreamExt;
    use tokio::io::duplex;

    #[tokio::test]
    async fn sent_frames_arrive_in_order() {
        let (x, y) = duplex(1 << 10);
        let mut a = Framed::new(x, FrameCodec::default());
        let mut b = Framed::new(y, FrameCodec::default());
        let frames = vec![
            Frame::Refused("r".into()),
            Frame::Msg(Msg::Swim(vec![9; 5000])),
            Frame::Msg(Msg::Left),
        ];
        let writer = async {
            for f in &frames {
                send(&mut a, f).await.unwrap();
            }
        };
        let reader = async {
            let mut got = Vec::new();
            for _ in 0..frames.len() {
                got.push(b.next().await.unwrap().unwrap());
            }
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert_eq!(got, frames);
    }

    #[tokio::test]
    async fn an_oversized_frame_is_not_sent() {
        let (x, _y) = duplex(1 << 10);
        let mut a = Framed::new(x, FrameCodec::new(16));
        let big = Frame::Msg(Msg::Swim(vec![1; 100]));
        assert!(matches!(
            send(&mut a, &big).await,
            Err(WireError::TooLarge { .. })
        ));
        assert!(a.write_buffer().is_empty());
    }
}
