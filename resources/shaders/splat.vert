#version 130
// Gaussian splatting vertex shader: one point sprite (a screen-aligned square)
// per Gaussian. Projects the 3D covariance with the EWA Jacobian exactly as
// the 3DGS / coseg.render CPU rasteriser does (near plane 0.2, tangent clamp
// at 1.3 x the half field of view, +0.3 px^2 on the 2D diagonal). The square
// is the smallest one around the projected mean that holds the ellipse of
// Mahalanobis radius `extent` (3, less for low opacities, see below): half
// side extent * sqrt(max(Sigma'xx, Sigma'yy)), the ellipse's axis-aligned
// bounding box, not rounded up to whole pixels; capped at half the largest
// point size the GL allows (u_max_radius). Varyings are flat: the same for
// every fragment of a sprite, so llvmpipe does not interpolate them.
// Camera convention: OpenCV world-to-camera (x right, y down, z forward),
// pixel (i, j) centre at (i + 0.5, j + 0.5).
uniform mat4 u_view;        // world to camera
uniform vec2 u_focal;       // fx, fy in pixels
uniform vec2 u_principal;   // cx, cy in pixels
uniform vec2 u_size;        // viewport width, height in pixels
uniform float u_max_radius;
uniform float u_depth_mode; // 1: colour by camera depth instead of a_color.rgb
uniform vec2 u_depth_range;

attribute vec3 a_mean;
attribute vec3 a_cov_a;     // Sigma xx xy xz
attribute vec3 a_cov_b;     // Sigma yy yz zz
attribute vec4 a_color;     // display colour and opacity (0 = hidden, negative = selected)

flat out vec4 v_color;     // display colour, log2(opacity)
flat out vec3 v_conic;      // log2(e) x (-a/2, -b, -c/2) of the conic (a, b, c) = inverse 2D covariance
flat out vec2 v_centre;     // projected mean in window coordinates (y up, like gl_FragCoord)

vec3 depth_colormap(float t) {
    // A compact blue-to-yellow ramp (viridis-like endpoints).
    t = clamp(t, 0.0, 1.0);
    return vec3(0.27, 0.0, 0.33) * (1.0 - t) * (1.0 - t)
         + vec3(0.13, 0.57, 0.55) * 2.0 * t * (1.0 - t)
         + vec3(0.99, 0.91, 0.14) * t * t;
}

void main() {
    vec3 t = (u_view * vec4(a_mean, 1.0)).xyz;
    float opacity = abs(a_color.a);
    if (t.z <= 0.2 || opacity < 1.0 / 255.0) {
        gl_Position = vec4(0.0, 0.0, 2.0, 1.0);
        gl_PointSize = 0.0;
        return;
    }
    float iz = 1.0 / t.z;
    vec2 lim = 1.3 * 0.5 * u_size / u_focal;
    vec2 tc = clamp(t.xy * iz, -lim, lim) * t.z;
    // Rows of T = J W (W = rotation of u_view; GLSL matrices are column-major).
    mat3 W = mat3(u_view[0].xyz, u_view[1].xyz, u_view[2].xyz);
    vec3 r0 = vec3(u_focal.x * iz, 0.0, -u_focal.x * tc.x * iz * iz) * W;
    vec3 r1 = vec3(0.0, u_focal.y * iz, -u_focal.y * tc.y * iz * iz) * W;
    // Sigma r for the symmetric Sigma stored as two vec3.
    vec3 s0 = vec3(dot(a_cov_a, r0), a_cov_a.y * r0.x + a_cov_b.x * r0.y + a_cov_b.y * r0.z,
                   a_cov_a.z * r0.x + a_cov_b.y * r0.y + a_cov_b.z * r0.z);
    vec3 s1 = vec3(dot(a_cov_a, r1), a_cov_a.y * r1.x + a_cov_b.x * r1.y + a_cov_b.y * r1.z,
                   a_cov_a.z * r1.x + a_cov_b.y * r1.y + a_cov_b.z * r1.z);
    float a = dot(r0, s0) + 0.3;
    float b = dot(r0, s1);
    float c = dot(r1, s1) + 0.3;
    float det = a * c - b * b;
    // Opacity-aware extent: beyond Mahalanobis distance sqrt(2 ln(255 opacity))
    // every fragment has alpha < 1/255 and is discarded anyway, so a
    // low-opacity splat gets a smaller square and the image is unchanged.
    // Never more than the rasteriser's 3 sigma.
    float extent = min(3.0, sqrt(2.0 * log(255.0 * opacity)));
    float radius = min(extent * sqrt(max(a, c)), u_max_radius);
    // Pre-scaled so the fragment shader's exponent is one exp2 of a quadratic.
    v_conic = 1.4426950408889634 * vec3(-0.5 * c / det, b / det, -0.5 * a / det);
    v_color = vec4(a_color.rgb, log2(opacity));
    if (u_depth_mode > 0.5) {
        v_color.rgb = depth_colormap((t.z - u_depth_range.x) / max(1e-6, u_depth_range.y - u_depth_range.x));
        // Selected splats keep their yellow tint in depth mode (the CPU tints every other mode).
        if (a_color.a < 0.0)
            v_color.rgb = mix(v_color.rgb, vec3(1.0, 0.85, 0.0), 0.7);
    }
    gl_PointSize = 2.0 * radius;
    vec2 centre = u_focal * t.xy * iz + u_principal;
    v_centre = vec2(centre.x, u_size.y - centre.y);
    gl_Position = vec4(2.0 * centre.x / u_size.x - 1.0, 1.0 - 2.0 * centre.y / u_size.y, 0.0, 1.0);
}
