//! Reading HTTP answers with a bound on their size, for every client of the crate (the
//! CloudReactor API, AWS): a server or proxy sending an endless body cannot make memory grow
//! without bound.

/// Why a body was not read.
pub(crate) enum BodyError {
    /// Longer than the limit (announced by `Content-Length`, or found while reading).
    TooLong,
    /// The connection failed while reading.
    Read(reqwest::Error),
}

/// Reads the body of `response`, failing once it is longer than `limit` bytes: before reading
/// anything when `Content-Length` says so, else without reading further.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(BodyError::TooLong);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLong);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
