//! Configuration: which job file goes to which component (§4.3), and the flash layouts of the
//! Corstone-300/310 TF-M builds (§4.3 "Partition sizes").

use crate::psa::{ComponentId, DEFAULT_MAX_WRITE_SIZE};

/// Job file path → PSA FWU component (§4.3, "job filepath → component").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentMap {
    /// `(filepath, component)` pairs, compared exactly (case-sensitive, as PAL-PSA's `strncmp`).
    pub entries: &'static [(&'static str, ComponentId)],
    /// Component for a path not in `entries`. `None` (the PAL-PSA behaviour) makes `prepare`
    /// fail with `RxFileCreateFailed`.
    pub default: Option<ComponentId>,
}

impl ComponentMap {
    /// PAL-PSA's table: `"secure image"` → 0x00, `"non_secure image"` → 0x01, `"combined
    /// image"` → FULL (0x00); any other path is refused.
    pub const PAL_PSA: Self = Self {
        entries: &[
            ("secure image", ComponentId::SECURE),
            ("non_secure image", ComponentId::NONSECURE),
            ("combined image", ComponentId::FULL),
        ],
        default: None,
    };

    /// The PAL-PSA table, with unknown paths (and AWS jobs without a `filepath`) going to the
    /// non-secure image, which is what CS3XX updates.
    pub const PAL_PSA_DEFAULT_NONSECURE: Self = Self {
        entries: Self::PAL_PSA.entries,
        default: Some(ComponentId::NONSECURE),
    };

    /// The component for `path`.
    pub fn component(&self, path: &str) -> Option<ComponentId> {
        self.entries
            .iter()
            .find(|(p, _)| *p == path)
            .map(|&(_, c)| c)
            .or(self.default)
    }

    /// Every distinct component the table (and default) can name, in ascending order, written
    /// into `out`; returns how many.
    pub fn components(&self, out: &mut [ComponentId; 8]) -> usize {
        let mut n = 0;
        let all = self.entries.iter().map(|&(_, c)| c).chain(self.default);
        for c in all {
            let present = out.iter().take(n).any(|&x| x == c);
            if !present && n < out.len() {
                if let Some(slot) = out.get_mut(n) {
                    *slot = c;
                    n += 1;
                }
            }
        }
        if let Some(s) = out.get_mut(..n) {
            s.sort_unstable();
        }
        n
    }
}

/// One MCUboot image (= one FWU component): its primary and secondary slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSlots {
    /// The component this image is.
    pub component: ComponentId,
    /// Primary (running) slot offset in the flash device.
    pub primary: u32,
    /// Secondary (staging) slot offset.
    pub secondary: u32,
    /// Size of each slot.
    pub size: u32,
}

/// A TF-M + MCUboot flash layout (`SWAP_USING_SCRATCH`, §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Flash erase sector ("image sector"), 64 KB on Corstone (§4.3).
    pub sector_size: u32,
    /// The MCUboot images, in image-number order.
    pub images: &'static [ImageSlots],
    /// Scratch area offset.
    pub scratch: u32,
    /// Scratch area size (512 KB on Corstone, §4.3).
    pub scratch_size: u32,
    /// Total flash size the layout spans.
    pub flash_size: u32,
}

const KB: u32 = 1024;

impl Layout {
    /// Corstone-300/310 (CS3XX) with two images: S 0x40000 and NS 0x340000, 64 KB sectors,
    /// 512 KB scratch (§4.3). The slot *sizes* are from the spec; the slot *order* (S primary,
    /// NS primary, S secondary, NS secondary, scratch, all contiguous) is how TF-M's
    /// `flash_layout.h` arranges them but the offsets were not confirmed from source: only the
    /// simulator uses offsets, the PAL never touches flash.
    pub const CORSTONE3XX: Self = Self {
        sector_size: 64 * KB,
        images: &[
            ImageSlots {
                component: ComponentId::SECURE,
                primary: 0,
                secondary: 0x0038_0000,
                size: 0x0004_0000,
            },
            ImageSlots {
                component: ComponentId::NONSECURE,
                primary: 0x0004_0000,
                secondary: 0x003c_0000,
                size: 0x0034_0000,
            },
        ],
        scratch: 0x0070_0000,
        scratch_size: 512 * KB,
        flash_size: 0x0078_0000,
    };

    /// The CS3XX keyword-detection variant read as three MCUboot images (`MCUBOOT_IMAGE_NUMBER
    /// 3`): S 0x40000, NS 0x240000 and the ML model 0x100000 as component 0x02. The spec gives
    /// "NS 0x340000 (0x240000 + 0x100000 ML model)"; that the model is its own component in
    /// this build is an interpretation, not confirmed.
    pub const CORSTONE3XX_ML: Self = Self {
        sector_size: 64 * KB,
        images: &[
            ImageSlots {
                component: ComponentId::SECURE,
                primary: 0,
                secondary: 0x0038_0000,
                size: 0x0004_0000,
            },
            ImageSlots {
                component: ComponentId::NONSECURE,
                primary: 0x0004_0000,
                secondary: 0x003c_0000,
                size: 0x0024_0000,
            },
            ImageSlots {
                component: ComponentId(0x02),
                primary: 0x0028_0000,
                secondary: 0x0060_0000,
                size: 0x0010_0000,
            },
        ],
        scratch: 0x0070_0000,
        scratch_size: 512 * KB,
        flash_size: 0x0078_0000,
    };

    /// The slots of `component`.
    pub fn image(&self, component: ComponentId) -> Option<&ImageSlots> {
        self.images.iter().find(|i| i.component == component)
    }

    /// Whether every area is sector-aligned, inside the flash and disjoint from the others.
    pub fn is_consistent(&self) -> bool {
        let s = self.sector_size;
        if s == 0 || self.flash_size % s != 0 {
            return false;
        }
        let mut areas = [(0u32, 0u32); 9];
        let mut n = 0;
        for i in self.images {
            for a in [(i.primary, i.size), (i.secondary, i.size)] {
                match areas.get_mut(n) {
                    Some(slot) => *slot = a,
                    None => return false,
                }
                n += 1;
            }
        }
        match areas.get_mut(n) {
            Some(slot) => *slot = (self.scratch, self.scratch_size),
            None => return false,
        }
        n += 1;
        let areas = areas.get(..n).unwrap_or(&[]);
        for (k, &(o, l)) in areas.iter().enumerate() {
            let end = match o.checked_add(l) {
                Some(e) => e,
                None => return false,
            };
            if o % s != 0 || l % s != 0 || l == 0 || end > self.flash_size {
                return false;
            }
            for &(o2, l2) in areas.iter().skip(k + 1) {
                if o < o2.saturating_add(l2) && o2 < end {
                    return false;
                }
            }
        }
        true
    }
}

/// Everything the PAL needs to know about the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Path → component table.
    pub components: ComponentMap,
    /// `PSA_FWU_MAX_WRITE_SIZE` of the TF-M build (`TFM_CONFIG_FWU_MAX_WRITE_SIZE`).
    pub max_write_size: usize,
}

impl Config {
    /// PAL-PSA behaviour with TF-M's default write size (1024).
    pub const PAL_PSA: Self = Self {
        components: ComponentMap::PAL_PSA,
        max_write_size: DEFAULT_MAX_WRITE_SIZE,
    };

    /// As [`Self::PAL_PSA`], with unknown paths going to the non-secure image.
    pub const PAL_PSA_DEFAULT_NONSECURE: Self = Self {
        components: ComponentMap::PAL_PSA_DEFAULT_NONSECURE,
        max_write_size: DEFAULT_MAX_WRITE_SIZE,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pal_psa_path_table() {
        let m = ComponentMap::PAL_PSA;
        assert_eq!(m.component("secure image"), Some(ComponentId(0)));
        assert_eq!(m.component("non_secure image"), Some(ComponentId(1)));
        assert_eq!(m.component("combined image"), Some(ComponentId(0)));
        assert_eq!(m.component("full image"), None);
        assert_eq!(m.component(""), None);
        let d = ComponentMap::PAL_PSA_DEFAULT_NONSECURE;
        assert_eq!(d.component("whatever"), Some(ComponentId(1)));
        let mut out = [ComponentId(0xff); 8];
        let n = m.components(&mut out);
        assert_eq!(&out[..n], &[ComponentId(0), ComponentId(1)]);
    }

    #[test]
    fn corstone_layouts_are_consistent_and_match_spec_sizes() {
        for l in [Layout::CORSTONE3XX, Layout::CORSTONE3XX_ML] {
            assert!(l.is_consistent(), "{l:?}");
            assert_eq!(l.sector_size, 0x1_0000);
            assert_eq!(l.scratch_size, 0x8_0000);
            assert_eq!(l.image(ComponentId::SECURE).unwrap().size, 0x4_0000);
        }
        assert_eq!(
            Layout::CORSTONE3XX
                .image(ComponentId::NONSECURE)
                .unwrap()
                .size,
            0x34_0000
        );
        let ml = Layout::CORSTONE3XX_ML;
        assert_eq!(
            ml.image(ComponentId::NONSECURE).unwrap().size + ml.image(ComponentId(2)).unwrap().size,
            0x34_0000
        );
    }
}
