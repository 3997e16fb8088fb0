//! The object store named by `--object-store`: S3 or any S3-compatible server, or a local
//! directory (the embedded default).

use std::path::Path;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

use crate::local_store::LocalStore;

pub fn open(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let Some(url) = url else {
        let dir = data_dir.join("objects");
        std::fs::create_dir_all(&dir)?;
        return Ok(Arc::new(LocalStore::new(&dir)?));
    };
    if let Some(path) = url.strip_prefix("file://") {
        std::fs::create_dir_all(path)?;
        return Ok(Arc::new(LocalStore::new(Path::new(path))?));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        anyhow::ensure!(
            !bucket.is_empty(),
            "--object-store s3:// needs a bucket name"
        );
        // Credentials and defaults come from the usual AWS_* environment variables.
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            builder = match key {
                "endpoint" => builder
                    .with_endpoint(value)
                    .with_allow_http(value.starts_with("http://"))
                    .with_virtual_hosted_style_request(false),
                "region" => builder.with_region(value),
                other => anyhow::bail!("unknown --object-store option {other}"),
            };
        }
        return Ok(Arc::new(builder.build()?));
    }
    anyhow::bail!(
        "--object-store must be s3://BUCKET?endpoint=URL&region=R or file:///PATH, not {url}"
    )
}
