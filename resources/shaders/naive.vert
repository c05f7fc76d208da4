// Baseline for `coseg-studio --benchmark` only: the naive point-sprite
// renderer the viewport is compared against (fixed-size round sprites with
// the Gaussian's DC colour, no covariance projection).
uniform mat4 u_view;
uniform vec2 u_focal;
uniform vec2 u_principal;
uniform vec2 u_size;
attribute vec3 a_mean;
attribute vec4 a_color;
varying vec4 v_color;
void main() {
    vec3 t = (u_view * vec4(a_mean, 1.0)).xyz;
    vec2 pix = u_focal * t.xy / t.z + u_principal;
    gl_Position = vec4(2.0 * pix.x / u_size.x - 1.0, 1.0 - 2.0 * pix.y / u_size.y, t.z < 0.2 ? 2.0 : 0.0, 1.0);
    gl_PointSize = 4.0;
    v_color = a_color;
}
