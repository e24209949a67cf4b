//! A fixed-memory replay buffer over an endless frame stream (reservoir sampling,
//! Vitter's Algorithm R): after `n` frames, every frame seen so far is held with the same
//! probability `capacity / n`, so a device learning from days of video replays its whole
//! history rather than the last minute.
//!
//! The buffer is serde data (frames stored as one flat byte array, plus the sampling RNG),
//! so checkpoints can store it and a restarted device continues with the same memory.

use super::{DataError, Frame};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// Bytes a stored label costs on top of the pixels.
const LABEL_BYTES: usize = std::mem::size_of::<Option<u32>>();

/// Reservoir of equally-sized frames within a byte budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservoir {
    budget_bytes: usize,
    /// Geometry of every slot, fixed by the first frame inserted (0 while empty).
    width: usize,
    height: usize,
    channels: usize,
    /// Slots that fit in the budget (0 until the geometry is known).
    capacity: usize,
    /// Frames offered so far.
    seen: u64,
    /// `len * width * height * channels` bytes, slot after slot.
    pixels: Vec<u8>,
    labels: Vec<Option<u32>>,
    rng: Xoshiro256PlusPlus,
}

impl Reservoir {
    /// An empty reservoir holding at most `budget_bytes` of frames (pixels and labels).
    pub fn new(budget_bytes: usize, seed: u64) -> Self {
        Reservoir {
            budget_bytes,
            width: 0,
            height: 0,
            channels: 0,
            capacity: 0,
            seen: 0,
            pixels: Vec::new(),
            labels: Vec::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// Offers one frame; returns whether it was stored. Frames must all share the geometry
    /// of the first one, and one frame must fit in the budget.
    pub fn insert(&mut self, frame: &Frame) -> Result<bool, DataError> {
        let slot = frame.byte_len();
        if frame.pixels.len() != slot || slot == 0 {
            return Err(DataError::Invalid(
                "replay buffer: frame buffer does not match its size".into(),
            ));
        }
        if self.capacity == 0 {
            let capacity = self.budget_bytes / (slot + LABEL_BYTES);
            if capacity == 0 {
                return Err(DataError::Invalid(format!(
                    "replay budget of {} bytes cannot hold one {}x{}x{} frame ({} bytes); raise --replay-mib",
                    self.budget_bytes, frame.width, frame.height, frame.channels, slot
                )));
            }
            (self.width, self.height, self.channels, self.capacity) =
                (frame.width, frame.height, frame.channels, capacity);
        } else if (frame.width, frame.height, frame.channels)
            != (self.width, self.height, self.channels)
        {
            return Err(DataError::Invalid(format!(
                "replay buffer holds {}x{}x{} frames, got {}x{}x{}",
                self.width, self.height, self.channels, frame.width, frame.height, frame.channels
            )));
        }
        self.seen += 1;
        let len = self.len();
        if len < self.capacity {
            // Grow geometrically but never past the budget, so capacity() bytes stay bounded.
            if self.labels.len() == self.labels.capacity() {
                let extra = len.max(16).min(self.capacity - len);
                self.pixels.reserve_exact(extra * slot);
                self.labels.reserve_exact(extra);
            }
            self.pixels.extend_from_slice(&frame.pixels);
            self.labels.push(frame.label);
            return Ok(true);
        }
        let j = self.rng.random_range(0..self.seen);
        if (j as usize) < self.capacity {
            let j = j as usize;
            self.pixels[j * slot..(j + 1) * slot].copy_from_slice(&frame.pixels);
            self.labels[j] = frame.label;
            return Ok(true);
        }
        Ok(false)
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether no frame is held yet.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Maximum frames held (0 until the first frame fixes the geometry).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The byte budget.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Heap bytes allocated for frames and labels (never above the budget).
    pub fn allocated_bytes(&self) -> usize {
        self.pixels.capacity() + self.labels.capacity() * LABEL_BYTES
    }

    /// A copy of slot `i`.
    pub fn get(&self, i: usize) -> Option<Frame> {
        let slot = self.width * self.height * self.channels;
        let pixels = self.pixels.get(i * slot..(i + 1) * slot)?.to_vec();
        Some(Frame {
            width: self.width,
            height: self.height,
            channels: self.channels,
            pixels,
            label: self.labels[i],
        })
    }

    /// `n` frames drawn uniformly from the buffer with `rng` (without replacement while
    /// `n <= len`, then with replacement); empty if the buffer is.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<Frame> {
        let len = self.len();
        if len == 0 {
            return Vec::new();
        }
        let picks: Vec<usize> = if n <= len {
            rand::seq::index::sample(rng, len, n).into_vec()
        } else {
            (0..n).map(|_| rng.random_range(0..len)).collect()
        };
        picks.into_iter().filter_map(|i| self.get(i)).collect()
    }
}
