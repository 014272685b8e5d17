// Vue 3: tell the template compiler which tags are custom elements (`isCustomElement`), pass
// rich data as properties (`.steps`, `.tokenProvider`) and listen with `@progress-complete`.
import { createApp, ref } from 'vue';
import '@progress-tracker-kit/widget/define';
import { demoConfig } from '../config.js';

const { src, job, tokenProvider } = await demoConfig();

const app = createApp({
  setup() {
    const status = ref('waiting');
    const update = ref({ progress: 0, seq: 0 });
    const retries = ref(0);
    const steps = [
      { id: 'fetch', label: 'Fetch' },
      { id: 'transform', label: 'Transform' },
      { id: 'upload', label: 'Upload' },
    ];
    return {
      src,
      job,
      tokenProvider,
      steps,
      status,
      update,
      retries,
      onUpdate: (e) => (update.value = { progress: e.detail.progress, seq: e.detail.seq }),
      onComplete: (e) => (status.value = `completed ${e.detail.id}`),
      onError: (e) => (status.value = `error ${e.detail.code}`),
      onRetry: () => retries.value++,
    };
  },
  template: `
    <progress-tracker
      :src="src"
      :job="job"
      .steps="steps"
      .tokenProvider="tokenProvider"
      label="Vue export"
      @progress-update="onUpdate"
      @progress-complete="onComplete"
      @progress-error="onError"
      @progress-retry="onRetry"
    >
      <p>All done, from Vue.</p>
    </progress-tracker>
    <p id="status" :data-progress="update.progress" :data-seq="update.seq" :data-retries="retries">{{ status }}</p>
  `,
});
app.config.compilerOptions.isCustomElement = (tag) => tag === 'progress-tracker' || tag === 'notification-badge';
app.mount('#app');
