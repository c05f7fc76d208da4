// Gaussian splatting vertex shader: one point sprite (a screen-aligned square)
// per Gaussian.
// Projects the 3D covariance with the EWA Jacobian (as the 3DGS rasteriser
// does: near plane 0.2, frustum clamp, +0.3 px on the 2D diagonal) and
// sizes the square to 3 sigma of the larger eigenvalue (radius capped at half
// the largest point size the GL allows, u_max_radius).
// Camera convention: OpenCV world-to-camera (x right, y down, z forward),
// pixel (i, j) centre at (i + 0.5, j + 0.5).
uniform mat4 u_view;      // world to camera
uniform vec2 u_focal;     // fx, fy in pixels
uniform vec2 u_principal; // cx, cy in pixels
uniform vec2 u_size;      // viewport width, height in pixels
uniform float u_mode;     // 0 rgb, 1 segmentation, 2 overlay, 3 depth, 4 features
uniform float u_highlight;// 1: dim the Gaussians outside the selection
uniform vec2 u_depth_range;
uniform float u_max_radius;

attribute vec3 a_mean;
attribute vec3 a_cov_a;   // xx xy xz
attribute vec3 a_cov_b;   // yy yz zz
attribute vec3 a_rgb;
attribute vec3 a_alt;     // segment colour or feature-PCA colour
attribute float a_opacity;
attribute float a_state;  // 0 normal, 1 selected, 2 hidden

varying vec3 v_color;
varying vec3 v_conic;
varying float v_radius;
varying float v_opacity;

vec3 depth_colormap(float t) {
    // A compact blue-to-yellow ramp (viridis-like endpoints).
    t = clamp(t, 0.0, 1.0);
    return vec3(0.27, 0.0, 0.33) * (1.0 - t) * (1.0 - t)
         + vec3(0.13, 0.57, 0.55) * 2.0 * t * (1.0 - t)
         + vec3(0.99, 0.91, 0.14) * t * t;
}

void cull() {
    gl_Position = vec4(0.0, 0.0, 2.0, 1.0);
    gl_PointSize = 0.0;
    v_opacity = 0.0;
}

void main() {
    if (a_state > 1.5) { cull(); return; }
    vec4 t4 = u_view * vec4(a_mean, 1.0);
    vec3 t = t4.xyz;
    if (t.z < 0.2) { cull(); return; }

    // Frustum clamp of the Jacobian's evaluation point (gsplat's form, which
    // also holds for an off-centre principal point).
    vec2 tan_fov = 0.5 * u_size / u_focal;
    vec2 lim_pos = (u_size - u_principal) / u_focal + 0.3 * tan_fov;
    vec2 lim_neg = u_principal / u_focal + 0.3 * tan_fov;
    float txz = clamp(t.x / t.z, -lim_neg.x, lim_pos.x);
    float tyz = clamp(t.y / t.z, -lim_neg.y, lim_pos.y);
    float tx = txz * t.z;
    float ty = tyz * t.z;

    // J (2x3) rows; W = rotation part of the view matrix (GLSL is column-major).
    vec3 j0 = vec3(u_focal.x / t.z, 0.0, -u_focal.x * tx / (t.z * t.z));
    vec3 j1 = vec3(0.0, u_focal.y / t.z, -u_focal.y * ty / (t.z * t.z));
    mat3 W = mat3(u_view[0].xyz, u_view[1].xyz, u_view[2].xyz);
    mat3 S = mat3(a_cov_a.x, a_cov_a.y, a_cov_a.z,
                  a_cov_a.y, a_cov_b.x, a_cov_b.y,
                  a_cov_a.z, a_cov_b.y, a_cov_b.z);
    // Rows of T = J W, as vectors: r = W^T j.
    vec3 r0 = j0 * W;
    vec3 r1 = j1 * W;
    vec3 s0 = S * r0;
    vec3 s1 = S * r1;
    float a = dot(r0, s0) + 0.3;
    float b = dot(r0, s1);
    float c = dot(r1, s1) + 0.3;
    float det = a * c - b * b;
    if (det <= 0.0) { cull(); return; }
    float mid = 0.5 * (a + c);
    float lambda = mid + sqrt(max(0.1, mid * mid - det));
    float radius = ceil(3.0 * sqrt(lambda));
    v_conic = vec3(c, -b, a) / det;

    vec2 centre = vec2(u_focal.x * t.x / t.z + u_principal.x,
                       u_focal.y * t.y / t.z + u_principal.y);
    radius = min(radius, u_max_radius);
    v_radius = radius;
    gl_PointSize = 2.0 * radius;
    gl_Position = vec4(2.0 * centre.x / u_size.x - 1.0, 1.0 - 2.0 * centre.y / u_size.y, 0.0, 1.0);

    vec3 rgb = a_rgb;
    if (u_mode > 0.5 && u_mode < 1.5) rgb = a_alt;
    else if (u_mode > 1.5 && u_mode < 2.5) rgb = mix(a_rgb, a_alt, 0.5);
    else if (u_mode > 2.5 && u_mode < 3.5)
        rgb = depth_colormap((t.z - u_depth_range.x) / max(1e-6, u_depth_range.y - u_depth_range.x));
    else if (u_mode > 3.5) rgb = a_alt;
    if (u_highlight > 0.5) {
        if (a_state > 0.5) rgb = mix(rgb, vec3(1.0, 0.6, 0.1), 0.35);
        else rgb *= 0.3;
    }
    v_color = rgb;
    v_opacity = a_opacity;
}
