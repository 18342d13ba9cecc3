//! G.711 mu-law and A-law bytes to linear 16-bit samples (ITU-T G.711).

/// G.711 mu-law to 16-bit linear.
pub(crate) fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0F;
    let magnitude = ((((mantissa as i32) << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// G.711 A-law to 16-bit linear.
pub(crate) fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn the_emulators_g711_decodes_closely() {
        for s in [-32_000i16, -1000, -5, 0, 7, 1000, 12_345, 32_000] {
            let u = ulaw_to_linear(narrate_emulator::synth::linear_to_ulaw(s));
            let a = alaw_to_linear(narrate_emulator::synth::linear_to_alaw(s));
            let tol = (i32::from(s).abs() / 16).max(16);
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= tol,
                "ulaw {s} -> {u}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= tol,
                "alaw {s} -> {a}"
            );
        }
    }
}
