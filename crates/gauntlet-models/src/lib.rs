//! Gauntlet's native text classifiers on libtorch (`tch`).
//!
//! Three architectures implement the tch-level [`Network`] trait — [`WordCnn`] (Kim 2014),
//! [`CharCnnLstm`] (the HotFlip character model) and [`BiRnn`] (Bělohlávek et al. 2018) —
//! and [`NativeModel`] wraps any of them, loaded from a bundle, behind the core
//! `Classifier` and `WhiteBox` traits. Training code uses [`Network`] directly; attacks and the
//! server only ever see the core traits.
//!
//! Every network is *batch invariant*: padding never changes an example's output, so an
//! attack that batches beam states gets the same scores as one that does not.

pub mod batch;
pub mod birnn;
pub mod bundle;
pub mod char_cnn_lstm;
mod convolution;
pub mod embedding;
pub mod error;
pub mod export;
pub mod lookup_forward;
pub mod network;
mod packing;
pub mod word_cnn;

pub use batch::PaddedBatch;
pub use birnn::BiRnn;
pub use bundle::{save_bundle, BundleFiles, NativeModel};
pub use char_cnn_lstm::CharCnnLstm;
pub use embedding::InputEmbedding;
pub use error::ModelsError;
pub use gauntlet_tch::device::{device_name, resolve_device};
pub use network::{Architecture, Network};
pub use word_cnn::WordCnn;
